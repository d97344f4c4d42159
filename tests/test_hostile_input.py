"""Hostile and broken trigger files against the real daemon.

Each bad file ends in ``processed/invalid/`` (a run that cannot start: ``processed/failed/``)
with its reason in ``<name>.result.json`` beside it, and a valid trigger dropped after it still
runs. No trigger field reaches a shell or an unvalidated path; nothing the daemon creates is
world-writable.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AGENT, Project, gone, wait_until

from starforge_daemon.store.journal import RunJournal

VALID_AGENT = "agent-a"
FOREIGN_UID = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def trigger_bytes(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def hostile_contents(marker: Path) -> dict[str, tuple[bytes, str]]:
    """File stem -> (content, the start of the reason expected on disk)."""
    big = b'{"to_agent": "agent-a", "message": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    nested_in_context = (b'{"to_agent": "agent-a", "context": ' + b'{"a": ' * 100_000 + b"1"
                         + b"}" * 100_000 + b"}")
    name_rule = ("to_agent: must be 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                 "letter or digit (got ")
    return {
        "random-bytes": (random.Random(20251025).randbytes(4096), "not valid JSON"),
        "invalid-utf8-in-string": (b'{"to_agent": "agent-\xff\xfe"}',
                                   "not valid JSON: not UTF-8 text (byte 0xff at offset 20)"),
        "invalid-utf8-bare": (b"\xc3\x28\xa0\xa1\xf0\x28\x8c\xbc",
                              "not valid JSON: not UTF-8 text (byte 0xc3 at offset 0)"),
        "empty": (b"", "empty file"),
        "blank": (b" \n\t \n", "empty file"),
        "json-array": (b'[{"to_agent": "agent-a"}]', "not a JSON object"),
        "json-string": (b'"agent-a"', "not a JSON object"),
        "json-number": (b"42", "not a JSON object"),
        "json-null": (b"null", "not a JSON object"),
        "nested-100k": (b"[" * 100_000 + b"]" * 100_000, "nested more than 200 levels deep"),
        "nested-100k-in-context": (nested_in_context, "nested more than 200 levels deep"),
        "several-mb": (big, f"too big: {len(big)} bytes (MAX_TRIGGER_BYTES=1048576)"),
        "missing-to-agent": (trigger_bytes(from_agent="x", action="a"),
                             "to_agent: required field is missing"),
        "null-to-agent": (trigger_bytes(to_agent=None), name_rule + "null)"),
        "number-to-agent": (trigger_bytes(to_agent=7), name_rule + "7)"),
        "list-to-agent": (trigger_bytes(to_agent=["agent-a"]), name_rule + '["agent-a"])'),
        "object-to-agent": (trigger_bytes(to_agent={"name": "agent-a"}),
                            name_rule + '{"name": "agent-a"})'),
        "agent-shell": (trigger_bytes(to_agent=f"$(touch {marker})"), name_rule + '"$(touch'),
        "agent-backticks": (trigger_bytes(to_agent=f"`touch {marker}`"), name_rule + '"`touch'),
        "agent-traversal": (trigger_bytes(to_agent="../../etc/passwd"),
                            name_rule + '"../../etc/passwd")'),
        "agent-escape": (trigger_bytes(to_agent="../../../escaped"), name_rule + '"../../..'),
        "agent-space": (trigger_bytes(to_agent="a b"), name_rule + '"a b")'),
        "agent-200-chars": (trigger_bytes(to_agent="a" * 200), name_rule + '"aaaa'),
        "agent-newline": (trigger_bytes(to_agent="agent-a\n"), name_rule + '"agent-a\\n")'),
        "agent-empty": (trigger_bytes(to_agent=""), name_rule + '"")'),
        "ticket-object": (trigger_bytes(to_agent="agent-a", ticket={"id": 52}),
                          'ticket: must be a string or a whole number (got {"id": 52})'),
        "ticket-bool": (trigger_bytes(to_agent="agent-a", ticket=True),
                        "ticket: must be a string or a whole number (got true)"),
        "context-ticket-object": (trigger_bytes(to_agent="agent-a", context={"ticket": [52]}),
                                  "context.ticket: must be a string or a whole number (got [52])"),
        "priority-text": (trigger_bytes(to_agent="agent-a", priority="high"),
                          'priority: must be a whole number from -1000000 to 1000000 '
                          '(got "high")'),
        "max-retries-too-many": (trigger_bytes(to_agent="agent-a", max_retries=101),
                                 "max_retries: must be a whole number from 0 to 100 (got 101)"),
        "nan": (b'{"to_agent": "agent-a", "priority": NaN}',
                "not valid JSON: NaN is not a JSON value"),
        "missing-comma": (b'{"to_agent": "agent-a" "action": "x"}',
                          "not valid JSON: Expecting ',' delimiter at line 1 column 24"),
        "nul-in-action": (trigger_bytes(to_agent="agent-a", action="a\x00b"),
                          "action: must not contain a NUL character"),
    }


def assert_invalid(project: Project, name: str, reason_start: str) -> None:
    folder = project.all_archived().get(name)
    assert folder == "invalid", f"{name} ended in {folder!r}"
    result = project.result(name)
    assert result["outcome"] == "invalid", (name, result)
    assert result["trigger"] == name
    assert result["reason"].startswith(reason_start), (name, result["reason"])


def wait_archived_alive(project: Project, count: int, timeout: float = 20) -> dict[str, str]:
    """Like ``project.wait_archived``, but fails at once, with the log, if the daemon died."""
    daemon = project.daemon_pid()

    def done() -> bool:
        if gone(daemon):
            raise AssertionError(f"the daemon died:\n{project.log()[-3000:]}")
        return len(project.all_archived()) >= count

    wait_until(done, timeout, f"{count} archived triggers (have {project.all_archived()})")
    return project.all_archived()


def drop_valid_and_wait(project: Project, name: str, count: int, timeout: float = 20) -> None:
    """Drop a valid trigger behind the hostile ones; all ``count`` files end up archived."""
    project.trigger(name, VALID_AGENT)
    archived = wait_archived_alive(project, count, timeout)
    assert archived[name] == "done", project.result(name)
    assert project.result(name)["outcome"] == "succeeded"


def test_broken_contents_are_rejected_and_valid_triggers_behind_them_run(project: Project) -> None:
    marker = project.root.parent / "pwned"
    contents = hostile_contents(marker)
    for stem, (data, _) in contents.items():
        project.raw_trigger(f"backlog-{stem}.trigger", data)
    daemon = project.start()
    for stem, (data, _) in contents.items():
        project.raw_trigger(f"live-{stem}.trigger", data)
    drop_valid_and_wait(project, "valid.trigger", 2 * len(contents) + 1)

    for phase in ("backlog", "live"):
        for stem, (_, reason) in contents.items():
            assert_invalid(project, f"{phase}-{stem}.trigger", reason)
        # what was rejected is archived byte for byte, not rewritten
        archived = project.paths.invalid / f"{phase}-random-bytes.trigger"
        assert archived.read_bytes() == contents["random-bytes"][0]
    assert project.started() == ["valid.trigger"]
    assert not marker.exists()
    assert not list(project.root.parent.glob("escaped*"))
    assert sorted(os.listdir(project.root)) == [".claude", ".env", "journal.jsonl"]
    assert sorted(p.name for p in project.paths.triggers.iterdir()) == ["processed", "running"]
    wait_until(lambda: project.log().count(" INVALID ") == 2 * len(contents), 5,
               "one INVALID line per rejected file")
    wait_until(lambda: json.loads(project.paths.state_file.read_text())["counters"].get("invalid")
               == 2 * len(contents), 5, "the invalid counter in daemon-state.json")
    assert project.daemon_pid() == daemon and project.cli("daemon", "status").returncode == 0


def test_file_name_that_is_not_utf8_is_rejected_not_fatal(project: Project) -> None:
    daemon = project.start()
    folder = os.fsencode(project.paths.triggers)
    temp = folder + b"/.bad.tmp"
    with open(temp, "wb") as file:
        file.write(trigger_bytes(to_agent=VALID_AGENT))
    os.rename(temp, folder + b"/bad-\xff\xfe.trigger")
    drop_valid_and_wait(project, "valid.trigger", 2)
    name = os.fsdecode(b"bad-\xff\xfe.trigger")
    assert_invalid(project, name, "file name is not valid UTF-8")
    assert os.path.exists(os.fsencode(project.paths.invalid) + b"/bad-\xff\xfe.trigger")
    assert project.started() == ["valid.trigger"]
    assert project.daemon_pid() == daemon and "CRITICAL" not in project.log()


def plant_non_regular(project: Project, prefix: str, outside: Path) -> dict[str, str]:
    """A symlink to a valid trigger outside the queue, a dangling symlink, a FIFO and a
    directory, all named ``*.trigger``. Returns name -> expected reason."""
    triggers = project.paths.triggers
    triggers.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, triggers / f"{prefix}link.trigger")
    os.symlink(outside.with_name("nowhere"), triggers / f"{prefix}dangling.trigger")
    os.mkfifo(triggers / f"{prefix}fifo.trigger")
    (triggers / f".{prefix}dir.tmp").mkdir()
    (triggers / f".{prefix}dir.tmp" / "inside.txt").write_text("kept")
    os.rename(triggers / f".{prefix}dir.tmp", triggers / f"{prefix}dir.trigger")
    return {f"{prefix}link.trigger": "not a regular file: a symbolic link",
            f"{prefix}dangling.trigger": "not a regular file: a symbolic link",
            f"{prefix}fifo.trigger": "not a regular file: a FIFO",
            f"{prefix}dir.trigger": "not a regular file: a directory"}


def test_symlink_fifo_and_directory_are_archived_as_invalid_untouched(project: Project) -> None:
    outside = project.root.parent / "outside" / "target.trigger"
    outside.parent.mkdir()
    target_content = trigger_bytes(to_agent="agent-secret", context={"touch": "followed"})
    outside.write_bytes(target_content)
    os.chmod(outside, 0o600)
    os.utime(outside, (1000, outside.stat().st_mtime))  # any read would now move the atime
    expected = plant_non_regular(project, "backlog-", outside)  # start must not block on them
    project.start()
    expected |= plant_non_regular(project, "live-", outside)
    drop_valid_and_wait(project, "valid.trigger", len(expected) + 1, timeout=10)  # FIFOs: no block

    invalid = project.paths.invalid
    for name, reason in expected.items():
        assert_invalid(project, name, reason)
    for prefix in ("backlog-", "live-"):
        assert os.readlink(invalid / f"{prefix}link.trigger") == str(outside)
        assert os.path.islink(invalid / f"{prefix}dangling.trigger")
        assert stat.S_ISFIFO(os.lstat(invalid / f"{prefix}fifo.trigger").st_mode)
        assert (invalid / f"{prefix}dir.trigger" / "inside.txt").read_text() == "kept"
    # the link was never followed: its target was not read, is unchanged, and never ran
    assert outside.stat().st_atime == 1000, "the link's target was read"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert outside.read_bytes() == target_content
    assert project.started() == ["valid.trigger"]
    assert not (project.root / "followed").exists()


@needs_root
@pytest.mark.parametrize("allow", [False, True], ids=["rejected-by-default", "allowed"])
def test_trigger_owned_by_another_user(project: Project, allow: bool) -> None:
    settings = {"ALLOW_FOREIGN_TRIGGERS": "true"} if allow else {}
    project.start(**settings)
    triggers = project.paths.triggers
    temp = triggers / ".foreign.tmp"
    temp.write_bytes(trigger_bytes(to_agent="agent-b"))
    os.chown(temp, FOREIGN_UID, FOREIGN_UID)
    os.rename(temp, triggers / "foreign.trigger")
    drop_valid_and_wait(project, "valid.trigger", 2)
    ran = project.started()
    if allow:
        assert project.all_archived()["foreign.trigger"] == "done"
        assert project.result("foreign.trigger")["outcome"] == "succeeded"
        assert sorted(ran) == ["foreign.trigger", "valid.trigger"]
    else:
        assert_invalid(project, "foreign.trigger",
                       f"owned by uid {FOREIGN_UID}, not by the daemon's uid 0")
        assert "ALLOW_FOREIGN_TRIGGERS" in project.result("foreign.trigger")["reason"]
        assert ran == ["valid.trigger"]
        assert (project.paths.invalid / "foreign.trigger").stat().st_uid == FOREIGN_UID


def test_trigger_written_slowly_under_its_final_name_runs_once(project: Project) -> None:
    """Two writers write the final name in pieces with the file open; one closes it at once,
    the other keeps it open until the daemon has run it (so no close event helps)."""
    settle = 2.0
    # the writers' pause between pieces: the scenario itself, not a wait; a twentieth of the
    # settle time, so that a writer held up by a loaded machine still looks like one writing
    pace = settle / 20
    project.start(TRIGGER_SETTLE_SECONDS=settle)
    body = b'{"to_agent": "agent-b", "action": "slow", "context": {"ticket": 7}}\n'
    pieces = [body[start:start + 3] for start in range(0, len(body), 3)]
    assert pace * (len(pieces) - 1) > settle, "the writing must outlast the settle time"
    names = ["slow-closed.trigger", "slow-open.trigger"]
    fds = [os.open(project.paths.triggers / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                   | os.O_CLOEXEC, 0o644) for name in names]
    try:
        for number, piece in enumerate(pieces):
            if number:
                time.sleep(pace)
            for fd in fds:
                os.write(fd, piece)
        os.close(fds.pop(0))
        wait_until(lambda: project.all_archived().get("slow-open.trigger"), 10,
                   "the still-open trigger to be run")
    finally:
        for fd in fds:
            os.close(fd)
    drop_valid_and_wait(project, "valid.trigger", 3)
    assert project.archived("invalid") == []
    for name in names:
        assert project.all_archived()[name] == "done"
        result = project.result(name)
        assert (result["outcome"], result["ticket"], result["action"]) == ("succeeded", "7",
                                                                           "slow")
    ran = sorted(project.started())
    assert ran == sorted([*names, "valid.trigger"]), "each trigger runs exactly once"


def test_trigger_fields_never_reach_a_shell(project: Project) -> None:
    marker = project.root.parent / "pwned"
    hostile = {"action": f"$(touch {marker})", "ticket": f"`touch {marker}`",
               "from_agent": f"x; touch {marker}", "message": f"| touch {marker} &&"}
    project.trigger("t.trigger", VALID_AGENT, **hostile)
    project.start(AGENT_COMMAND=f"{project.settings['AGENT_COMMAND']} {{action}} {{ticket}} "
                                "{from_agent} --prompt={prompt}")
    project.wait_archived(1)
    assert project.result("t.trigger")["outcome"] == "succeeded"
    start = project.journal("start")[0]
    argv = start["argv"]
    assert argv[:3] == [hostile["action"], hostile["ticket"], hostile["from_agent"]]
    assert len(argv) == 4 and hostile["message"] in argv[3]
    assert start["env"]["STARFORGE_ACTION"] == hostile["action"]
    assert not marker.exists()


def program_cases(root: Path) -> dict[str, str]:
    """Trigger stem -> the program the agent command names; none of them can be started."""
    not_executable = root / "not-executable"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    not_executable.chmod(0o644)
    bad_interpreter = root / "bad-interpreter"
    bad_interpreter.write_text("#!/nonexistent/interpreter\n")
    bad_interpreter.chmod(0o755)
    not_a_program = root / "not-a-program"
    not_a_program.write_bytes(b"\x00\x01 not an executable format\n")
    not_a_program.chmod(0o755)
    return {"missing-path": str(root / "no-such-program"),
            "missing-on-path": "starforge-no-such-program-on-path",
            "not-executable": str(not_executable),
            "directory": str(root),
            "bad-interpreter": str(bad_interpreter),
            "not-a-program": str(not_a_program)}


def test_agent_command_that_cannot_start_fails_the_trigger_only(project: Project) -> None:
    programs = program_cases(project.root.parent)
    base = time.time_ns() - 10_000_000_000
    for number, (stem, program) in enumerate(programs.items()):
        project.trigger(f"{stem}.trigger", VALID_AGENT, action=program, mtime_ns=base + number)
    daemon = project.start(AGENT_COMMAND=f"{{action}} {shlex.quote(str(AGENT))}")
    project.trigger("between.trigger", VALID_AGENT, action=sys.executable)
    for stem, program in programs.items():
        project.trigger(f"live-{stem}.trigger", VALID_AGENT, action=program)
    project.trigger("valid.trigger", VALID_AGENT, action=sys.executable)
    archived = wait_archived_alive(project, 2 * len(programs) + 2)

    assert archived.pop("between.trigger") == "done"
    assert archived.pop("valid.trigger") == "done"
    assert set(archived.values()) == {"failed"}, archived
    for name in archived:
        result = project.result(name)
        program = programs[name.removeprefix("live-").removesuffix(".trigger")]
        assert result["outcome"] == "failed" and result["exit_code"] is None, result
        assert result["reason"].startswith(f"could not start {program!r}: "), result["reason"]
        assert Path(result["log"]).read_text().startswith("starforge: could not start")
    assert project.started() == ["between.trigger", "valid.trigger"]
    wait_until(lambda: project.slots()[VALID_AGENT]["status"] == "idle", 5, "the slot idle")
    assert project.slots()[VALID_AGENT]["pid"] is None
    assert project.daemon_pid() == daemon and project.cli("daemon", "status").returncode == 0
    wait_until(lambda: not RunJournal(project.paths).entries(), 5, "no run left open")


def start_with_umask(project: Project, foreground: bool) -> subprocess.Popen[bytes] | None:
    """Start the daemon from a shell whose umask is 0: the daemon must set modes itself."""
    project.write_env()
    command = [sys.executable, "-m", "starforge_daemon", "--project-dir", str(project.root),
               "daemon", "start"]
    if not foreground:
        subprocess.run(command, check=True, umask=0, capture_output=True, timeout=60)
        return None
    process = subprocess.Popen([*command, "--foreground"], umask=0, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: process.poll() is not None
               or project.cli("daemon", "status", check=False).returncode == 0,
               30, "the foreground daemon to be ready")
    assert process.poll() is None, f"foreground daemon exited {process.returncode}"
    return process


def world_writable(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # a temporary file the daemon just renamed away
                continue
            if mode & stat.S_IWOTH and not stat.S_ISLNK(mode):
                found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_nothing_the_daemon_creates_is_world_writable(project: Project, foreground: bool) -> None:
    process = start_with_umask(project, foreground)
    try:
        project.trigger("ok.trigger", "agent-ok", context={"output": 10})
        project.trigger("bad.trigger", "agent-bad", context={"exit": 2})
        project.raw_trigger("junk.trigger", b"[]")
        project.wait_archived(3)
        wait_until(lambda: project.paths.history_file.exists(), 5, "run history")
        claude = project.paths.claude
        assert project.paths.pid_file.exists() and project.paths.slots_file.exists()
        assert world_writable(claude) == []
        assert not stat.S_IMODE(claude.stat().st_mode) & stat.S_IWOTH
        project.stop()
        assert world_writable(claude) == []
    finally:
        if process is not None:
            if process.poll() is None:
                project.cli("daemon", "stop", check=False)
            process.wait(timeout=30)


def test_an_inotify_overflow_is_said_and_every_trigger_still_runs(project: Project) -> None:
    limit = Path("/proc/sys/fs/inotify/max_queued_events")  # read when the watch is made
    before = limit.read_text()
    try:
        limit.write_text("16\n")
    except OSError as error:
        pytest.skip(f"cannot lower max_queued_events here ({error}); needs root")
    try:
        project.start(PARALLEL_DAEMON="true")
    finally:
        limit.write_text(before)
    daemon = project.daemon_pid()
    os.kill(daemon, signal.SIGSTOP)  # the watcher reads nothing while 40 triggers arrive
    try:
        for number in range(40):
            project.trigger(f"t{number:02d}.trigger")
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert len(wait_archived_alive(project, 40)) == 40
    assert "QUEUE the kernel's queue of trigger-folder events overflowed" in project.log()
