"""The keeper's stream reader (lines, oversize lines, the once-a-second progress) and the
daemon's reading of a run's own account (exit records, outcomes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from starforge_daemon.core import streams
from starforge_daemon.core.ledger import Running
from starforge_daemon.core.models import OutcomeKind, ProcessIdentity, Run, RunExit
from starforge_daemon.core.scheduler import outcome_of
from starforge_daemon.runtime.local.stream_reader import PROGRESS_INTERVAL, open_stream

RECORDED = Path(__file__).parent / "data" / "claude"


def test_lines_split_across_chunks_reach_the_adapter_whole() -> None:
    stream = open_stream("claude")
    assert stream is not None and open_stream("text") is None
    data = (RECORDED / "bash-tool.jsonl").read_bytes()
    for start in range(0, len(data), 7):  # chunks that cut lines anywhere
        stream.feed(data[start:start + 7], wall=100.0)
    summary = stream.finish()
    assert summary["got_result"] is True and summary["skipped_lines"] == 0
    assert summary["expects_result"] is True


def test_a_line_over_the_limit_is_dropped_as_it_comes_and_counted() -> None:
    stream = open_stream("claude")
    assert stream is not None
    stream.feed(b"x" * (streams.MAX_LINE_BYTES + 10), wall=1.0)
    stream.feed(b"y" * 10 + b"\n", wall=1.0)
    stream.feed((RECORDED / "text.jsonl").read_bytes(), wall=2.0)
    summary = stream.finish()
    assert summary["skipped_lines"] == 1 and summary["got_result"] is True


def test_progress_is_due_at_once_then_at_most_once_a_second() -> None:
    stream = open_stream("claude")
    assert stream is not None
    assert stream.due_in(0.0) is None, "nothing happened yet"
    lines = (RECORDED / "bash-tool.jsonl").read_bytes().splitlines(keepends=True)
    stream.feed(lines[0], wall=50.0)
    assert stream.due_in(10.0) == 0.0
    first = stream.progress(10.0)
    assert first["phase"] == "thinking" and first["last_event_at"] == 50.0
    assert stream.due_in(10.2) is None, "nothing new since"
    stream.feed(lines[1], wall=50.5)
    assert stream.due_in(10.2) == pytest.approx(PROGRESS_INTERVAL - 0.2)
    assert stream.due_in(11.0) == 0.0
    for line in lines[2:]:
        stream.feed(line, wall=51.0)
    assert stream.progress(11.0)["result_at"] == 51.0


def _run() -> Running:
    run = Run(run_id="agent-a-1-abc", agent="agent-a", trigger_name="t.trigger",
              trigger_path="/t", log_path="/l", started_at=0.0, timeout=100.0)
    return Running(run, ProcessIdentity(pid=1, start=0.0))


def _exit(stream: dict[str, object] | None, code: int = 0) -> RunExit:
    return RunExit.from_dict({"ended_at": 1.0, "exit_code": code, "error": None,
                              **({"stream": stream} if stream is not None else {})})


def _summary(fixture: str) -> dict[str, object]:
    stream = open_stream("claude")
    assert stream is not None
    stream.feed((RECORDED / fixture).read_bytes(), wall=1.0)
    return stream.finish()


def test_the_outcome_follows_the_run_s_own_account() -> None:
    failed = outcome_of(_run(), _exit(_summary("api-error-400.jsonl"), code=0))
    assert failed.kind is OutcomeKind.FAILED
    assert failed.reason.startswith("the agent reported: api error 400"), failed.reason
    missing = outcome_of(_run(), _exit(_summary("init.jsonl")))
    assert (missing.kind, missing.reason.split(":")[0]) == (OutcomeKind.FAILED, "no result")
    assert outcome_of(_run(), _exit(_summary("text.jsonl"))).kind is OutcomeKind.SUCCEEDED
    assert outcome_of(_run(), _exit(None)).kind is OutcomeKind.SUCCEEDED  # plain text output


def test_a_damaged_stream_record_reads_as_empty_fields() -> None:
    ended = _exit({"got_result": "yes", "tokens_in": "many", "cost_usd": "x", "failure": 3})
    assert ended.stream is not None
    assert (ended.stream.got_result, ended.stream.tokens_in, ended.stream.cost_usd,
            ended.stream.failure) == (False, 0, None, None)
    assert _exit({"got_result": True}).stream.got_result is True  # type: ignore[union-attr]
