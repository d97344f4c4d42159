"""The real claude against the fake Messages API: a stalled stream is stopped by the stall
watchdog, a rate-limited answer holds the run and requeues it uncounted, a run over its budget
is stopped, and RESUME_SESSIONS hands a ticket's session to its next run."""

from __future__ import annotations

from fake_messages_api import Turn, fake_api  # noqa: F401 - the fixture claude's needs
from test_claude_cli import ClaudeProject, claude  # noqa: F401 - the fixture


def test_a_stalled_stream_is_stopped_by_the_stall_watchdog(claude: ClaudeProject) -> None:  # noqa: F811
    claude.api.script(Turn.stall())
    claude.start(AGENT_STALL_TIMEOUT=2)
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert claude.project.archived("failed") == ["t.trigger"], result
    assert result["outcome"] == "stalled" and "AGENT_STALL_TIMEOUT" in result["reason"], result
    assert len(claude.api.main_requests()) == 1


def test_a_rate_limited_claude_run_is_requeued_without_an_attempt(
        claude: ClaudeProject) -> None:  # noqa: F811
    claude.api.env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # claude would retry a 429 ten times
    claude.api.script(Turn.error(429))
    claude.api.fallback = Turn.text("done after the limit")
    claude.start(RATE_LIMIT_HOLD=1)
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert result["outcome"] == "succeeded" and result["attempt"] == 1, result
    held, done = claude.project.history(2)
    assert held["outcome"] == "rate_limited" and held["api_error_status"] == 429, held
    assert done["run_id"] == result["run_id"]
    assert held["attempt"] == 1 and held["retry_at"], held
    assert "rate-limited" in claude.project.log()


def test_a_claude_run_over_its_budget_is_stopped(claude: ClaudeProject) -> None:  # noqa: F811
    gate = claude.project.root / "GATE"
    claude.api.usage["input_tokens"] = 200_000  # $1 at the opus list price, each answer
    claude.api.script(Turn.bash(f"while [ ! -e {gate} ]; do sleep 0.05; done", "Wait"))
    claude.start(MAX_RUN_COST_USD=0.5, MAX_RETRIES=1)
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    claude.project.wait_archived(1, timeout=60)
    result = claude.project.result("t.trigger")
    assert result["outcome"] == "over_budget", result
    assert "MAX_RUN_COST_USD=0.5" in result["reason"], result
    assert len(claude.project.history(1)) == 1  # not tried again
    assert not gate.exists()


def test_resume_sessions_per_ticket_continues_the_tickets_session(
        claude: ClaudeProject) -> None:  # noqa: F811
    claude.api.script(Turn.text("first answer"), Turn.text("second answer"))
    claude.start(RESUME_SESSIONS="per-ticket")
    claude.project.trigger("1.trigger", "junior-dev-a", ticket=7, message="remember PINEAPPLE")
    claude.project.wait_archived(1, timeout=60)
    claude.project.trigger("2.trigger", "junior-dev-a", ticket=7, message="what was the word?")
    claude.project.wait_archived(2, timeout=60)
    first, second = claude.project.result("1.trigger"), claude.project.result("2.trigger")
    assert second["outcome"] == "succeeded", second
    assert first["session_id"] == second["session_id"], (first, second)
    asked = claude.api.main_requests()[-1].texts()
    assert any("PINEAPPLE" in text for text in asked)  # the first run's prompt, resumed
