"""Trigger parsing and intake, property-based: any bytes in, a valid trigger or a reason out.

``parse_trigger`` and ``examine`` never raise on input, and what they accept is safe to put in
argv, the environment, the run's JSON files and a log file name.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from starforge_daemon.core.command import PLACEHOLDERS, placeholder_values, render_argv, run_environment
from starforge_daemon.core.models import Run, Trigger
from starforge_daemon.intake.triggers import Accepted, NotReady, Rejected, examine
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger

AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
TEXT_FIELDS = ("from_agent", "action", "message", "trace_id")
HOSTILE_NAMES = ["$(touch /tmp/x)", "`id`", "../../etc/passwd", "..", ".", "a b", "a" * 65,
                 "a" * 200, "agent\n", "agent\x00", "agent/x", "-rf", "", " agent", "agént",
                 "\uff41gent", "agent\u202e", "a\\b", "a;b", "a*"]
SETTLE = 2.0
MTIME = 1_700_000_000.0

json_leaves = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
               | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
agent_names = (st.from_regex(AGENT_NAME, fullmatch=True) | st.sampled_from(HOSTILE_NAMES)
               | st.text(max_size=70) | json_values)
texts = st.text(max_size=30) | st.sampled_from(["a\x00b", "$(id)", "\n", ""]) | json_values
tickets = st.integers() | st.text(max_size=10) | st.sampled_from(["5\x00", True]) | json_values
contexts = (st.dictionaries(st.sampled_from(["ticket", "sleep", "x"]), tickets, max_size=3)
            | json_values)
extra_keys = st.text(max_size=12) | st.sampled_from(["model_config", "__class__", "__dict__",
                                                     "model_fields", "to_agent ", "TO_AGENT"])
documents = st.fixed_dictionaries(
    {},
    optional={"to_agent": agent_names, "from_agent": texts, "action": texts, "message": texts,
              "trace_id": texts, "ticket": tickets, "context": contexts},
) | json_values
valid_documents = st.fixed_dictionaries(
    {"to_agent": st.from_regex(AGENT_NAME, fullmatch=True)},
    optional={"action": st.text(max_size=20).filter(lambda t: "\x00" not in t),
              "ticket": st.integers(-10**6, 10**6),
              "context": st.dictionaries(st.text(max_size=5),  # too short to be "ticket"
                                         json_leaves, max_size=3)},
)


def _text_ok(value: Any) -> bool:
    return value is None or (isinstance(value, str) and "\x00" not in value)


def _ticket_ok(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return _text_ok(value)


def should_be_valid(document: Any) -> bool:
    """The contract's rules, written independently of the model."""
    if not isinstance(document, dict):
        return False
    agent = document.get("to_agent")
    if not isinstance(agent, str) or not AGENT_NAME.fullmatch(agent):
        return False
    if not all(_text_ok(document.get(name)) for name in TEXT_FIELDS):
        return False
    if not _ticket_ok(document.get("ticket")):
        return False
    context = document.get("context")
    if context is None:
        return True
    return isinstance(context, dict) and _ticket_ok(context.get("ticket"))


def assert_safe_to_run(trigger: Trigger) -> None:
    """What the engine does with an accepted trigger must work and stay inside its bounds."""
    agent = trigger.to_agent
    assert AGENT_NAME.fullmatch(agent), agent
    assert os.path.basename(agent) == agent and agent not in (".", "..")
    run = Run(run_id=f"{agent}-1700000000-abcdef", agent=agent, trigger_name="t.trigger",
              trigger_path="/p/.claude/triggers/running/t.trigger",
              log_path=f"/p/.claude/logs/{agent}-1700000000-abcdef.log", started_at=MTIME,
              timeout=60, ticket=trigger.ticket_text, action=trigger.action,
              from_agent=trigger.from_agent)
    assert Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    values = placeholder_values(run, trigger, run.trigger_path, "/p/.claude/daemon/runs/r.prompt")
    argv = render_argv(["prog", *(f"{{{name}}}" for name in PLACEHOLDERS)], values)
    env = run_environment({}, values, "/p")
    for word in [*argv, *env.values()]:
        assert "\x00" not in word
        os.fsencode(word)
    assert argv[1] == agent and len(argv) == len(PLACEHOLDERS) + 1


def judge(data: bytes) -> Trigger | str:
    """Parse; any exception other than InvalidTrigger fails the test."""
    try:
        trigger = parse_trigger(data)
    except InvalidTrigger as error:
        reason = str(error)
        assert reason.strip() and "\n" not in reason and len(reason) < 400, reason
        return reason
    assert isinstance(trigger, Trigger)
    assert_safe_to_run(trigger)
    return trigger


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
@example(b"")
@example(b"\xff\xfe\x00")
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"to_agent": "a"}')
@example(b'{"to_agent": "a", "ticket": ' + b"9" * 5000 + b"}")
@example(b'{"to_agent": "a", "action": "\\ud800"}')
@example(b'{"to_agent": "a", "to_agent": "$(id)"}')
@example(b'\xef\xbb\xbf{"to_agent": "a"}')
def test_any_bytes_give_a_trigger_or_a_reason(data: bytes) -> None:
    judge(data)


@settings(max_examples=400, deadline=None)
@given(documents, st.booleans())
@example({"to_agent": "a", "ticket": {"id": 1}}, True)
@example({"to_agent": "a", "context": {"ticket": 2**70}}, True)
@example({"to_agent": "agent\n"}, True)
@example({"to_agent": "a", "model_config": {"extra": "forbid"}}, False)
def test_json_documents_are_judged_by_the_contract(document: Any, ascii_only: bool) -> None:
    result = judge(json.dumps(document, ensure_ascii=ascii_only).encode())
    if should_be_valid(document):
        assert isinstance(result, Trigger), result
        assert result.to_agent == document["to_agent"]
        ticket = document.get("ticket")
        if ticket is None:
            ticket = (document.get("context") or {}).get("ticket")
        assert result.ticket_text == (None if ticket is None else str(ticket))
    else:
        assert isinstance(result, str), f"accepted {document!r}"


@settings(max_examples=300, deadline=None)
@given(valid_documents, st.data())
def test_damaged_valid_triggers_give_a_trigger_or_a_reason(document: dict[str, Any],
                                                           data: st.DataObject) -> None:
    raw = bytearray(json.dumps(document).encode())
    assert isinstance(judge(bytes(raw)), Trigger)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(raw)))
        damage = data.draw(st.sampled_from(["cut", "insert", "flip"]))
        if damage == "cut":
            del raw[where:]
        elif damage == "insert":
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=4))
        elif where < len(raw):
            raw[where] ^= data.draw(st.integers(1, 255))
    judge(bytes(raw))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("intake")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400) | valid_documents.map(lambda d: json.dumps(d).encode()),
       max_bytes=st.integers(0, 300), fresh=st.booleans())
def test_examine_any_file_content(folder: Path, data: bytes, max_bytes: int,
                                  fresh: bool) -> None:
    path = folder / "x.trigger"
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))
    now = MTIME + (0.5 if fresh else SETTLE + 1)
    verdict = examine(path, now, max_bytes=max_bytes, allow_foreign=False, settle_seconds=SETTLE)
    parsed = judge(data)
    if len(data) > max_bytes:
        assert verdict == Rejected(f"too big: {len(data)} bytes (MAX_TRIGGER_BYTES={max_bytes})")
    elif isinstance(parsed, Trigger):
        assert isinstance(verdict, Accepted), verdict
        assert verdict.entry.name == "x.trigger" and verdict.entry.agent == parsed.to_agent
        assert verdict.entry.key == (-parsed.priority, os.stat(path).st_mtime_ns, "x.trigger")
    elif fresh:
        assert verdict == NotReady(retry_at=MTIME + SETTLE)
    else:
        assert verdict == Rejected(parsed)
    assert path.read_bytes() == data, "examine never changes the file"


def judge_file(path: Path, *, allow_foreign: bool = False) -> Any:
    return examine(path, MTIME + 3600 * 24 * 365 * 100, max_bytes=1024 * 1024,
                   allow_foreign=allow_foreign, settle_seconds=SETTLE)


def test_oversize_file_is_rejected_without_being_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.trigger"
    with open(big, "wb") as file:
        file.write(b'{"to_agent": "a", "message": "')
        file.truncate(5 * 1024 * 1024)
    exact = tmp_path / "exact.trigger"
    body = b'{"to_agent": "a"}'
    exact.write_bytes(body + b" " * (1024 * 1024 - len(body)))
    reads: list[int] = []
    real_read = os.read

    def spy(fd: int, size: int) -> bytes:
        reads.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", spy)
    assert judge_file(big) == Rejected("too big: 5242880 bytes (MAX_TRIGGER_BYTES=1048576)")
    assert reads == []
    assert isinstance(judge_file(exact), Accepted)
    assert reads and max(reads) <= 1024 * 1024 + 1


def test_files_that_are_not_regular_are_rejected_unopened(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target"
    target.write_text('{"to_agent": "a"}')
    os.utime(target, (1000, MTIME))
    os.symlink(target, tmp_path / "link.trigger")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.trigger")
    os.symlink("/dev/zero", tmp_path / "zero.trigger")
    os.mkfifo(tmp_path / "fifo.trigger")
    (tmp_path / "dir.trigger").mkdir()
    monkeypatch.chdir(tmp_path)  # a short relative name for the socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("sock.trigger")
        expected = {"link": "a symbolic link", "dangling": "a symbolic link",
                    "zero": "a symbolic link", "fifo": "a FIFO", "dir": "a directory",
                    "sock": "a socket"}
        for stem, kind in expected.items():
            assert judge_file(tmp_path / f"{stem}.trigger") == Rejected(
                f"not a regular file: {kind}"), stem
    assert target.stat().st_atime == 1000, "the link's target was read"


def test_file_name_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad-\xff.trigger"
    with open(raw, "wb") as file:
        file.write(b'{"to_agent": "a"}')
    path = Path(os.fsdecode(raw))
    assert judge_file(path) == Rejected("file name is not valid UTF-8")
    fine = tmp_path / "fine-é.trigger"
    fine.write_text('{"to_agent": "a"}')
    assert isinstance(judge_file(fine), Accepted)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_foreign_owner_is_rejected_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "foreign.trigger"
    path.write_text('{"to_agent": "a"}')
    os.chown(path, 65534, 65534)
    verdict = judge_file(path)
    assert isinstance(verdict, Rejected)
    assert verdict.reason.startswith("owned by uid 65534, not by the daemon's uid 0")
    assert isinstance(judge_file(path, allow_foreign=True), Accepted)
    assert stat.S_ISREG(os.lstat(path).st_mode) and path.stat().st_uid == 65534
