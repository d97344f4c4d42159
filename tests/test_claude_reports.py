"""What a run reports of itself, read from Claude Code's stream-json output: its progress in the
slot while it works, what it cost in its result, and a failure it reports (whatever its exit
status) or a missing result line as the outcome. With the real claude against the fake API,
and with a plain agent that prints recorded claude output and exits 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Project, wait_until
from fake_messages_api import (
    DEFAULT_USAGE,
    Turn,
    fake_api,  # noqa: F401 - the fixture claude's needs
)
from test_claude_cli import ClaudeProject, claude  # noqa: F401 - the fixture

RECORDED = Path(__file__).parent / "data" / "claude"


def test_a_claude_run_shows_its_tool_call_in_the_slot_and_records_its_cost(
        claude: ClaudeProject) -> None:  # noqa: F811
    started, gate = claude.project.root / "STARTED", claude.project.root / "GATE"
    claude.api.script(
        Turn.bash(f"touch {started} && while [ ! -e {gate} ]; do sleep 0.05; done", "Wait"),
        Turn.text("All done.\nThe gate opened."))
    claude.start()
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    wait_until(started.exists, 60, "the Bash tool's command running")

    def tool_progress() -> dict[str, Any] | None:
        progress = claude.project.slots()["junior-dev-a"].get("progress")
        return progress if progress and progress["phase"] == "tool" else None

    progress = wait_until(tool_progress, 10, "the tool call in the slot's progress")
    assert progress["tool"] == "Bash", progress
    assert str(started) in progress["tool_input"], progress
    assert progress["tokens_in"] == DEFAULT_USAGE["input_tokens"], progress
    status = json.loads(claude.project.cli("daemon", "status", "--json").stdout)
    [slot] = [slot for slot in status["slots"] if slot["agent"] == "junior-dev-a"]
    assert slot["progress"]["tool"] == "Bash", slot
    assert "tool Bash: touch" in claude.project.cli("daemon", "status").stdout
    gate.touch()

    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert result["outcome"] == "succeeded", result
    final = [line for line in claude.stream("t.trigger") if line.get("type") == "result"][-1]
    assert result["cost_usd"] == final["total_cost_usd"] and result["cost_usd"] > 0
    assert result["session_id"] == final["session_id"]
    assert result["turns"] == final["num_turns"] == 2
    # two model answers, each with the fake's usage
    assert result["tokens_in"] == 2 * DEFAULT_USAGE["input_tokens"], result
    assert result["tokens_out"] == 2 * DEFAULT_USAGE["output_tokens"], result
    assert result["cache_read_tokens"] == 2 * DEFAULT_USAGE["cache_read_input_tokens"]
    assert result["result_text"] == "All done.\nThe gate opened."
    assert claude.project.history(1)[-1]["cost_usd"] == result["cost_usd"]


def test_an_api_error_claude_reports_fails_the_run_with_its_reason(
        claude: ClaudeProject) -> None:  # noqa: F811
    # claude retries a 400 a few times with fewer beta features; every try gets the error
    claude.api.fallback = Turn.error(400, message="the fake refuses")
    claude.start()
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert claude.project.archived("failed") == ["t.trigger"], result
    assert "api error 400" in result["reason"], result
    assert result["api_error_status"] == 400


def _printing(project: Project, fixture: Path) -> None:
    """A plain agent (``cat``) that prints recorded claude output and exits 0, read as claude's."""
    project.start(AGENT_COMMAND=f"cat {fixture}", AGENT_OUTPUT="claude")


def test_exit_0_with_an_error_result_is_a_failure(project: Project) -> None:
    _printing(project, RECORDED / "api-error-400.jsonl")
    project.trigger("t.trigger", "agent-a")
    project.wait_archived(1)
    assert project.archived("failed") == ["t.trigger"]
    result = project.result("t.trigger")
    assert result["exit_code"] == 0 and result["outcome"] == "failed", result
    assert result["reason"].startswith("the agent reported: api error 400"), result


def test_exit_0_without_a_result_line_is_a_failure(project: Project) -> None:
    _printing(project, RECORDED / "init.jsonl")
    project.trigger("t.trigger", "agent-a")
    project.wait_archived(1)
    result = project.result("t.trigger")
    assert result["outcome"] == "failed" and result["reason"].startswith("no result"), result


def test_plain_text_output_is_judged_by_its_exit_status(project: Project) -> None:
    _printing(project, RECORDED / "init.jsonl")
    project.write_env(AGENT_OUTPUT="text")
    project.stop()
    project.start()
    project.trigger("t.trigger", "agent-a")
    project.wait_archived(1)
    result = project.result("t.trigger")
    assert result["outcome"] == "succeeded" and result.get("session_id") is None, result
