"""``starforge logs`` shows a run log of JSON events (Claude Code's stream-json, Codex's and
Gemini's JSON lines) as readable text, and any other log, or any log with ``--raw``, as it is.
Rendered from the recorded output of the real CLIs (tests/data), and end to end from the logs
of real runs: a plain agent that prints recorded claude output, and the real claude against the
fake Messages API."""

from __future__ import annotations

import gzip
import json
import shlex
from pathlib import Path

import pytest
from conftest import Project, wait_until
from fake_messages_api import Turn, fake_api  # noqa: F401 - the fixture claude's needs
from test_claude_cli import ClaudeProject, claude  # noqa: F401 - the fixture
from test_cli import background, run_log_name, text_of

from starforge_daemon.client.stream_render import LogRenderer

DATA = Path(__file__).resolve().parent / "data"
BASH_TOOL = DATA / "claude" / "bash-tool.jsonl"
BASH_TOOL_TEXT = """\
[init] model claude-opus-5-5, session e46095c6-0a74-476e-b0f0-4a56a2bdddd1
→ Bash: touch made-by-claude
  ⎿ (Bash completed with no output)
assistant: done
[result] success · 2 turns · $0.0217 · 0.3 s
"""
FIXTURES = sorted(DATA.glob("*/*.jsonl"))


def render(data: bytes, chunk: int | None = None) -> str:
    """data fed in chunks of chunk bytes (all at once by default), then the end of the log."""
    renderer = LogRenderer()
    step = chunk or max(len(data), 1)
    out = b"".join(renderer.feed(data[start:start + step]) for start in range(0, len(data), step))
    return (out + renderer.finish()).decode()


def claude_lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / "claude" / name).read_text().splitlines()]


def jsonl(events: list[dict]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


# -- rendering the recorded output -------------------------------------------------------------


def test_a_claude_bash_tool_run_reads_as_call_output_answer_and_result() -> None:
    assert render(BASH_TOOL.read_bytes()) == BASH_TOOL_TEXT


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_recording_renders_the_same_in_any_chunks_and_shows_no_json(fixture: Path) -> None:
    data = fixture.read_bytes()
    whole = render(data)
    assert whole.strip(), "something to read"
    assert all(render(data, chunk) == whole for chunk in (1, 7, 4096))
    assert render(data.rstrip(b"\n")) == whole, "a last line without its newline still counts"
    assert not any(line.startswith('{"') for line in whole.splitlines()), whole


def test_a_long_tool_output_is_cut_to_its_first_lines_and_an_error_is_marked() -> None:
    events = claude_lines("bash-tool.jsonl")
    [result_block] = events[2]["message"]["content"]
    result_block["content"] = "\n".join(f"line {number}" for number in range(1, 11))
    failed = json.loads(json.dumps(events[2]))
    failed["message"]["content"][0].update(content=[{"type": "text", "text": "Exit code 2\nboom"}],
                                           is_error=True)
    text = render(jsonl([*events[:3], failed]))
    assert "  ⎿ line 1\n    line 2\n    line 3\n    line 4\n    … (+6 lines)\n" in text
    assert "line 5" not in text
    assert text.endswith("  ⎿ error: Exit code 2\n    boom\n")


def test_failures_retries_and_interruptions_of_claude_are_spelled_out() -> None:
    api_error = render((DATA / "claude" / "api-error-400.jsonl").read_bytes())
    assert "error: API Error: 400 fake invalid request\n" in api_error
    assert "[result] error: api error 400: API Error: 400 fake invalid request · 1 turn · " \
           "$0.0000 · 0.4 s\n" in api_error
    assert "[retry] attempt 1/2 after 529 overloaded\n" in render(
        (DATA / "claude" / "overloaded-529.jsonl").read_bytes())
    sigint = render((DATA / "claude" / "sigint-during-bash.jsonl").read_bytes())
    assert "→ Bash: touch started; sleep 30; touch finished\n  ⎿ error: The user doesn't" in sigint
    assert "[result] error: error_during_execution (aborted_tools) · 3 turns" in sigint


def test_the_result_text_is_shown_unless_it_repeats_the_last_answer() -> None:
    events = claude_lines("text.jsonl")
    assert render(jsonl(events)).count("hi there") == 1
    events[-1]["result"] = "Summary:\nall fixed"
    assert render(jsonl(events)).endswith(" s\n  Summary:\n  all fixed\n")


def test_codex_and_gemini_runs_read_like_claude_ones() -> None:
    codex = render((DATA / "codex" / "command-then-answer.jsonl").read_bytes())
    assert "→ command: bash -lc ls\n  ⎿ README.md\n    src\n" in codex
    assert "assistant: The repository holds:\n  - README.md\n  - src\n" in codex
    junk = render((DATA / "codex" / "retry-then-answer-with-junk.jsonl").read_bytes())
    assert "\nWarning: no last agent message; wrote empty content\n" in junk
    gemini = render((DATA / "gemini" / "tool-then-answer.jsonl").read_bytes())
    assert gemini == ("[init] model gemini-2.5-pro, session 5b1e2c1a-9f4e-4f7d-8a51-7f0b3c2d9e10\n"
                      "user: count the files in src\n"
                      "assistant: I'll list them.\n"
                      "→ run_shell_command: ls src | wc -l\n"
                      "  ⎿ 7\n"
                      "assistant: There are 7 files in src.\n"
                      "[result] success · 2.7 s\n")


def test_text_passes_through_byte_for_byte() -> None:
    text = (b"hello\n{not json\n\xff\xfe bytes\r\n  indented\n[1, 2]\n"
            b'{"type": "not-an-event", "n": 1}\n{"no": "type"}\nno newline at the end')
    for chunk in (None, 1, 5):
        renderer = LogRenderer()
        step = chunk or len(text)
        out = b"".join(renderer.feed(text[start:start + step])
                       for start in range(0, len(text), step))
        assert out + renderer.finish() == text


def test_unknown_events_in_a_stream_are_left_out_and_other_lines_kept() -> None:
    events = claude_lines("text.jsonl")
    data = jsonl(events[:1]) + b'{"type":"stream_event","event":{}}\nwarning: on stderr\n' \
        + jsonl(events[1:]) + b'{"type":"assistant","message":{"content":[1,null,{"type":"text"}]}}\n' \
        + b'{"type":"user","message":5}\n{"type":"result","subtype":7,"num_turns":"x","result":[]}\n'
    lines = render(data).splitlines()
    assert lines[1:3] == ["warning: on stderr", "assistant: hi there"]
    assert not any("stream_event" in line for line in lines)
    assert lines[-1] == "[result] success", "fields of the wrong type are left out"


def test_an_unfinished_text_line_shows_at_once_an_unfinished_event_waits() -> None:
    renderer = LogRenderer()
    assert renderer.feed(b"Password: ") == b"Password: "
    assert renderer.feed(b"(none)\n" + BASH_TOOL.read_bytes()[:50]) == b"(none)\n"
    assert renderer.feed(BASH_TOOL.read_bytes()[50:]).decode() == BASH_TOOL_TEXT


# -- starforge logs on real runs -----------------------------------------------------------------


def _print_then(project: Project, script: str) -> None:
    """A plain agent running the shell script, its output read as claude's."""
    agent = project.root.parent / "agent.sh"
    agent.write_text(f"#!/bin/sh\n{script}\n")
    agent.chmod(0o755)
    project.start(AGENT_COMMAND=str(agent), AGENT_OUTPUT="claude")


def test_logs_renders_a_runs_stream_and_raw_prints_it_as_it_is(project: Project) -> None:
    _print_then(project, f"cat {shlex.quote(str(BASH_TOOL))}; echo 'a note on stderr' >&2")
    project.trigger("t.trigger", "agent-a")
    project.wait_archived(1)
    result = project.result("t.trigger")
    assert result["outcome"] == "succeeded", result
    log = Path(result["log"]).read_bytes()
    assert log == BASH_TOOL.read_bytes() + b"a note on stderr\n"
    shown = project.cli("logs", "agent-a")
    assert shown.stdout == BASH_TOOL_TEXT + "a note on stderr\n"
    assert result["log"] in shown.stderr
    raw = project.cli("logs", "--run", result["run_id"], "--raw")
    assert raw.stdout.encode() == log
    # -n counts the log's lines; the answer is not among them, so the result shows its text
    assert project.cli("logs", "agent-a", "-n", "2").stdout == (
        "[result] success · 2 turns · $0.0217 · 0.3 s\n  done\na note on stderr\n")


def test_logs_of_a_text_agent_are_unchanged(project: Project) -> None:
    project.trigger("t.trigger", "agent-a", context={"output": 9000})
    project.start()
    project.wait_archived(1)
    log = Path(project.result("t.trigger")["log"])
    log.write_bytes(log.read_bytes() + b'{"type": "not-an-event"}\n[1]\nno newline')
    assert project.cli("logs", "agent-a").stdout.encode() == log.read_bytes()


def test_logs_follow_renders_events_as_they_come(project: Project) -> None:
    gate = project.root / "GATE"
    fixture = shlex.quote(str(BASH_TOOL))
    _print_then(project, f"head -n 3 {fixture}; while [ ! -e {gate} ]; do sleep 0.02; done; "
                         f"tail -n +4 {fixture}")
    project.trigger("t.trigger", "agent-a")
    with background(project, "logs", "agent-a", "-f") as (proc, out):
        wait_until(lambda: text_of(out) == "".join(BASH_TOOL_TEXT.splitlines(True)[:3]),
                   what="the tool call and its output, before the run goes on")
        assert proc.poll() is None
        gate.touch()
        assert proc.wait(timeout=30) == 0
        assert text_of(out) == BASH_TOOL_TEXT
        assert "ended: succeeded" in text_of(out.with_suffix(".err"))


def test_logs_of_a_real_claude_run(claude: ClaudeProject) -> None:  # noqa: F811
    claude.api.script(Turn.bash("seq 1 10", "Count"), Turn.text("Counted.\nTen lines."))
    claude.start()
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert result["outcome"] == "succeeded", result
    text = claude.project.cli("logs", "junior-dev-a").stdout
    assert text.startswith(f"[init] model {result['model']}, session {result['session_id']}\n")
    assert "→ Bash: seq 1 10\n  ⎿ 1\n    2\n    3\n    4\n    … (+6 lines)\n" in text
    assert "assistant: Counted.\n  Ten lines.\n" in text
    assert f"[result] success · 2 turns · ${result['cost_usd']:.4f} · " in text
    assert '{"type"' not in text
    raw = claude.project.cli("logs", "junior-dev-a", "--raw").stdout
    assert raw.encode() == Path(result["log"]).read_bytes()


def test_an_old_compressed_stream_log_is_rendered(project: Project) -> None:
    project.paths.logs.mkdir(parents=True)
    packed = project.paths.logs / (run_log_name("dev", 1_700_000_000) + ".gz")
    packed.write_bytes(gzip.compress(BASH_TOOL.read_bytes()))
    assert project.cli("logs", "dev").stdout == BASH_TOOL_TEXT
    assert project.cli("logs", "dev", "--raw").stdout.encode() == BASH_TOOL.read_bytes()
