"""What the daemon does with what a run reports of itself, with an agent that prints Claude Code
stream-json as its trigger scripts it (tests/stream_agent.py): the watchdogs (no first event,
silence, still running after its result), rate-limit holds, budgets and permission denials."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from conftest import Project, wait_until

STREAM_AGENT = Path(__file__).parent / "stream_agent.py"
COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(STREAM_AGENT))}"
INIT = {"type": "system", "subtype": "init", "session_id": "s-1", "model": "claude-opus-5-5"}
THINKING = {"type": "assistant", "session_id": "s-1", "message": {
    "id": "msg_1", "model": "claude-opus-5-5", "content": [{"type": "text", "text": "working"}],
    "usage": {"input_tokens": 1000, "output_tokens": 10}}}


def result(cost: float = 0.01, **fields: Any) -> dict[str, Any]:
    return {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1,
            "result": "done", "session_id": "s-1", "total_cost_usd": cost, **fields}


def rate_limit(reset: str) -> dict[str, Any]:
    return {"type": "rate_limit_event",
            "rate_limit_info": {"status": "rejected", "resetsAt": reset}}


def start(project: Project, **settings: Any) -> None:
    project.start(AGENT_COMMAND=COMMAND, AGENT_OUTPUT="claude", **settings)


def run_script(project: Project, name: str, agent: str = "agent-a", **context: Any) -> None:
    project.trigger(name, agent, context=context)


def status_json(project: Project) -> dict[str, Any]:
    return json.loads(project.cli("daemon", "status", "--json").stdout)


def test_no_first_event_is_stalled(project: Project) -> None:
    start(project, AGENT_FIRST_OUTPUT_TIMEOUT=1)
    run_script(project, "t.trigger", gate="never")
    project.wait_archived(1)
    outcome = project.result("t.trigger")
    assert project.archived("failed") == ["t.trigger"], outcome
    assert outcome["outcome"] == "stalled", outcome
    assert "AGENT_FIRST_OUTPUT_TIMEOUT" in outcome["reason"], outcome
    assert "WATCHDOG" in project.log()


def test_silence_after_events_is_stalled(project: Project) -> None:
    start(project, AGENT_STALL_TIMEOUT=1, AGENT_FIRST_OUTPUT_TIMEOUT=600)
    run_script(project, "t.trigger", before=[INIT, THINKING], gate="never")
    project.wait_archived(1)
    outcome = project.result("t.trigger")
    assert outcome["outcome"] == "stalled" and "AGENT_STALL_TIMEOUT" in outcome["reason"], outcome


def test_a_run_still_going_after_its_result_is_stopped_and_keeps_the_results_outcome(
        project: Project) -> None:
    start(project, AGENT_RESULT_GRACE=1)
    run_script(project, "ok.trigger", before=[INIT, result()], gate="never")
    run_script(project, "bad.trigger", "agent-b", gate="never",
               before=[INIT, result(subtype="error_max_turns", is_error=True)])
    project.wait_archived(2)
    good, bad = project.result("ok.trigger"), project.result("bad.trigger")
    assert good["outcome"] == "succeeded" and "AGENT_RESULT_GRACE" in good["reason"], good
    assert bad["outcome"] == "failed" and "error_max_turns" in bad["reason"], bad
    assert project.archived("done") == ["ok.trigger"]


def test_a_rate_limit_event_holds_new_runs_until_its_reset(project: Project) -> None:
    start(project, PARALLEL_DAEMON="true")
    run_script(project, "limited.trigger", before=[INIT, rate_limit("+3600")], gate="GATE",
               after=[result()])
    wait_until(lambda: "rate-limited until" in (status_json(project)["held_back"] or ""), 10,
               "the hold in status --json")
    run_script(project, "next.trigger", "agent-b", before=[INIT, result()])
    status = project.cli("daemon", "status").stdout
    assert "rate-limited until" in status, status
    wait_until(lambda: [line for line in project.log().splitlines()
                        if "HOLD" in line and "rate-limited until" in line], 10, "HOLD")
    project.open_gate("GATE")
    project.wait_archived(1)
    assert project.result("limited.trigger")["outcome"] == "succeeded"
    # the other agent's trigger waits for the reset, an hour away
    queue = project.cli("queue", "list").stdout
    assert "next.trigger" in queue, queue
    assert project.all_archived() == {"limited.trigger": "done"}


def test_a_rate_limited_result_requeues_without_an_attempt_then_runs(project: Project) -> None:
    refused = result(0.0, is_error=True, api_error_status=429, result="API Error: 429 · rate_limit")
    start(project, RATE_LIMIT_HOLD=1)
    run_script(project, "t.trigger", before=[INIT, refused], exit=1)
    wait_until(lambda: any(h["outcome"] == "rate_limited" for h in project.history()), 20,
               "the rate-limited run in the history")
    # its every run is refused again; another agent's trigger runs once each hold is over
    project.trigger("u.trigger", "agent-b", context={"before": [INIT, result()]})
    project.wait_archived(1)
    assert project.result("u.trigger")["attempt"] == 1
    first = next(h for h in project.history() if h["outcome"] == "rate_limited")
    assert first["retry_at"] and first["attempt"] == 1, first
    assert "rate-limited" in first["reason"], first
    later = [h for h in project.history() if h["trigger"] == "t.trigger"]
    assert {h["attempt"] for h in later} == {1}, later  # never counted as an attempt
    assert "t.trigger" not in project.all_archived()


def test_the_run_budget_stops_a_run_over_it(project: Project) -> None:
    expensive = {**THINKING, "message": {**THINKING["message"],
                                         "usage": {"input_tokens": 200_000, "output_tokens": 10}}}
    start(project, MAX_RUN_COST_USD=0.5, MAX_RETRIES=2)
    run_script(project, "t.trigger", before=[INIT, expensive], gate="never")
    project.wait_archived(1)
    outcome = project.result("t.trigger")
    assert outcome["outcome"] == "over_budget", outcome
    assert "MAX_RUN_COST_USD=0.5" in outcome["reason"], outcome
    assert outcome["cost_usd"] >= 1.0, outcome  # 200,000 tokens at the opus list price
    assert project.archived("failed") == ["t.trigger"]
    assert len(project.history(1)) == 1  # over budget is not tried again


def test_the_daily_budget_holds_new_runs_also_after_a_restart(project: Project) -> None:
    start(project, DAILY_COST_LIMIT_USD=0.5)
    run_script(project, "a.trigger", before=[INIT, result(0.6)])
    project.wait_archived(1)
    run_script(project, "b.trigger", before=[INIT, result(0.01)])
    wait_until(lambda: "DAILY_COST_LIMIT_USD" in (status_json(project)["held_back"] or ""), 10,
               "the daily budget's hold")
    project.stop()
    project.start()
    wait_until(lambda: "DAILY_COST_LIMIT_USD" in (status_json(project)["held_back"] or ""), 10,
               "the hold after a restart")
    assert project.all_archived() == {"a.trigger": "done"}
    assert "b.trigger" in project.cli("queue", "list").stdout


def test_permission_denials_fail_the_run_only_when_asked(project: Project) -> None:
    denied = result(permission_denials=[{"tool_name": "Bash", "tool_use_id": "toolu_1"}])
    start(project)
    run_script(project, "lenient.trigger", before=[INIT, denied])
    project.wait_archived(1)
    lenient = project.result("lenient.trigger")
    assert lenient["outcome"] == "succeeded" and lenient["permission_denials"] == 1, lenient
    project.stop()
    project.start(FAIL_ON_PERMISSION_DENIAL="true")
    run_script(project, "strict.trigger", before=[INIT, denied])
    project.wait_archived(2)
    strict = project.result("strict.trigger")
    assert strict["outcome"] == "failed", strict
    assert "FAIL_ON_PERMISSION_DENIAL" in strict["reason"], strict
