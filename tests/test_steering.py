"""Steering the queue on real processes: priorities, retries, pools, pause, stop, cancel, load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Project, wait_until


def test_priority_runs_first_and_keeps_order_within_a_priority(project: Project) -> None:
    base = time.time_ns() - 10_000_000_000
    project.trigger("a-old.trigger", "agent-a", mtime_ns=base)
    project.trigger("b-old.trigger", "agent-b", mtime_ns=base + 1)
    project.trigger("a-urgent-2.trigger", "agent-a", mtime_ns=base + 3, priority=5)
    project.trigger("a-urgent-1.trigger", "agent-a", mtime_ns=base + 2, priority=5)
    project.trigger("c-low.trigger", "agent-c", mtime_ns=base - 5, priority=-1)
    project.start()
    project.wait_archived(5)
    assert project.started() == ["a-urgent-1.trigger", "a-urgent-2.trigger", "a-old.trigger",
                                 "b-old.trigger", "c-low.trigger"]


def test_cli_trigger_takes_a_priority(project: Project) -> None:
    project.paths.ensure()
    path = project.cli("trigger", "agent-a", "--priority", "7", "--max-retries", "1").stdout
    body = json.loads(Path(path.strip()).read_text())
    assert body == {"to_agent": "agent-a", "priority": 7, "max_retries": 1,
                    "id": Path(path.strip()).stem}
    bad = project.cli("trigger", "agent-a", "--priority", "high", check=False)
    assert bad.returncode == 2 and len(list(project.paths.triggers.glob("*.trigger"))) == 1


def test_failed_run_is_retried_after_its_backoff_then_dead_lettered(project: Project) -> None:
    project.trigger("flaky.trigger", "agent-a", context={"exit": 3})
    project.start(MAX_RETRIES=2, RETRY_BACKOFF=0.4)
    project.wait_archived(1, timeout=20)
    assert project.all_archived() == {"flaky.trigger": "failed"}
    times = [entry["time"] for entry in project.journal("start")]
    assert len(times) == 3, "one run and two retries"
    assert times[1] - times[0] >= 0.4 and times[2] - times[1] >= 0.8, "backoff doubles"
    result = project.result("flaky.trigger")
    assert [a["attempt"] for a in result["attempts"]] == [1, 2, 3]
    assert all(a["outcome"] == "failed" and a["exit_code"] == 3 for a in result["attempts"])
    assert len({a["log"] for a in result["attempts"]}) == 3
    assert "RETRY" in project.log()
    assert not list(project.paths.attempts.iterdir())


def test_retry_waits_behind_older_work_and_per_trigger_limit(project: Project) -> None:
    base = time.time_ns() - 10_000_000_000
    project.trigger("first.trigger", "agent-a", mtime_ns=base, context={"exit": 1})
    project.trigger("second.trigger", "agent-a", mtime_ns=base + 1)
    project.trigger("never-again.trigger", "agent-b", mtime_ns=base + 2, max_retries=0,
                    context={"exit": 1})
    project.start(MAX_RETRIES=1, RETRY_BACKOFF=0)
    project.wait_archived(3)
    assert project.started().count("never-again.trigger") == 1
    order = [name for name in project.started() if name != "never-again.trigger"]
    assert order == ["first.trigger", "second.trigger", "first.trigger"]


def test_retry_command_puts_failed_triggers_back(project: Project) -> None:
    project.trigger("t.trigger", "agent-a", context={"exit": 2})
    project.start()
    project.wait_archived(1)
    assert project.all_archived() == {"t.trigger": "failed"}
    missing = project.cli("retry", "nope.trigger", check=False)
    assert missing.returncode == 1 and "nope.trigger" in missing.stderr
    answer = json.loads(project.cli("retry", "t.trigger", "--json").stdout)
    assert answer[0]["queued_as"] == str(project.paths.triggers / "t.trigger")
    wait_until(lambda: len(project.journal("start")) == 2, what="the trigger ran again")
    project.wait_archived(1)
    assert project.all_archived() == {"t.trigger": "failed"}


def test_pool_spreads_work_round_robin_and_waits_when_busy(project: Project) -> None:
    base = time.time_ns() - 10_000_000_000
    for number in range(4):
        project.trigger(f"p{number}.trigger", "dev", mtime_ns=base + number,
                        context={"gate": "open"})
    project.trigger("other.trigger", "reviewer", mtime_ns=base + 10)
    project.start(PARALLEL_DAEMON="true", AGENT_POOLS="dev=dev-a,dev-b")
    wait_until(lambda: project.all_archived() == {"other.trigger": "done"}
               and len(project.journal("start")) >= 3, what="pool members and reviewer")
    early = {entry["trigger"]: entry["agent"] for entry in project.journal("start")}
    assert early == {"p0.trigger": "dev-a", "p1.trigger": "dev-b", "other.trigger": "reviewer"}
    assert (project.paths.triggers / "p2.trigger").exists(), "the busy pool waits"
    project.open_gate("open")
    project.wait_archived(5)
    runners = {project.result(f"p{n}.trigger")["agent"] for n in range(4)}
    assert runners == {"dev-a", "dev-b"}
    assert project.result("p0.trigger")["pool"] == "dev"
    assert "dev" not in project.slots(), "slots are the members"


def test_pause_and_resume_per_agent_and_globally_across_a_restart(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true")
    assert "agent-a" in project.cli("queue", "pause", "agent-a").stdout
    project.trigger("a.trigger", "agent-a")
    project.trigger("b.trigger", "agent-b")
    project.wait_archived(1)
    project.cli("daemon", "restart")
    # the new daemon has read both and dispatched before it said it was ready
    assert (project.paths.triggers / "a.trigger").exists(), "still paused after the restart"
    doc = json.loads(project.cli("daemon", "status", "--json").stdout)
    assert doc["paused"]["agents"] == ["agent-a"]
    assert "agent-a" in project.cli("daemon", "status").stdout
    assert project.started() == ["b.trigger"]
    project.cli("queue", "pause")
    project.cli("queue", "resume", "agent-a")
    project.trigger("c.trigger", "agent-c")
    assert json.loads(project.cli("queue", "resume", "--json").stdout)["paused"] == {
        "all": False, "agents": []}
    project.wait_archived(3)
    assert sorted(project.started()) == ["a.trigger", "b.trigger", "c.trigger"]


def test_agent_stop_and_queue_cancel(project: Project) -> None:
    project.trigger("long.trigger", "agent-a", context={"sleep": 60})
    project.trigger("later.trigger", "agent-a")
    project.start(MAX_RETRIES=3, RETRY_BACKOFF=0)
    wait_until(lambda: project.journal("start"), what="agent running")
    cancelled = project.cli("queue", "cancel", "later.trigger").stdout
    assert "failed/later.trigger" in cancelled
    assert project.result("later.trigger")["outcome"] == "cancelled"
    project.cli("agent", "stop", "agent-a")
    project.wait_archived(2)
    result = project.result("long.trigger")
    assert result["outcome"] == "killed" and "stopped by the operator" in result["reason"]
    assert len(project.journal("start")) == 1, "no retry after an operator stop"
    nobody = project.cli("agent", "stop", "agent-z", check=False)
    assert nobody.returncode == 1 and "no run" in nobody.stderr
    unknown = project.cli("queue", "cancel", "ghost.trigger", check=False)
    assert unknown.returncode == 1 and "not waiting" in unknown.stderr


def test_holds_back_while_memory_is_short(project: Project) -> None:
    project.trigger("t.trigger", "agent-a")
    project.start(MIN_FREE_MEMORY_PERCENT=100)  # no machine has 100 % free: always short
    wait_until(lambda: "HOLD" in project.log(), what="the daemon says it holds back")
    held = wait_until(lambda: json.loads(project.cli("daemon", "status", "--json").stdout)
                      ["held_back"], what="status shows the hold")
    assert "MIN_FREE_MEMORY_PERCENT" in held
    assert "holding back" in project.cli("daemon", "status").stdout
    assert project.journal() == [] and project.all_archived() == {}
    project.stop()
    project.start(MIN_FREE_MEMORY_PERCENT=0)
    project.wait_archived(1)


def test_auto_concurrency_limit(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS="auto")
    doc = json.loads(project.cli("daemon", "status", "--json").stdout)
    assert isinstance(doc["max_concurrent"], int) and doc["max_concurrent"] >= 1
    assert "(auto)" in project.log()


@pytest.mark.parametrize("args", [["queue", "cancel", "t.trigger"], ["agent", "stop", "a"]])
def test_control_commands_need_a_daemon_and_have_help(project: Project, args: list[str]) -> None:
    project.paths.ensure()
    result = project.cli(*args, check=False)
    assert result.returncode == 1 and "not running" in result.stderr
    assert project.cli(*args[:2], "--help").returncode == 0
