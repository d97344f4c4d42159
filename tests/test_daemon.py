"""The daemon end to end: real CLI, real daemon, real agent processes."""

from __future__ import annotations

import json
import os
import time

from conftest import Project, gone, wait_until


def max_overlap(project: Project) -> int:
    """The most runs the journal shows at the same moment."""
    events = sorted((e["time"], 1 if e["event"] == "start" else -1)
                    for e in project.journal() if e["event"] in ("start", "end"))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def release_one_at_a_time(project: Project, count: int) -> list[str]:
    """Let ``count`` runs, each held on the gate named after its trigger (``t1`` for
    ``t1.trigger``), end one by one, each once it has started while no other run was going;
    the triggers in the order they ran."""
    for number in range(1, count + 1):
        wait_until(lambda n=number: len(project.journal("start")) >= n, what=f"run {number}")
        started = project.started()
        assert (len(started), len(project.journal("end"))) == (number, number - 1), (
            f"one run at a time, but the journal shows {project.journal()}")
        project.open_gate(started[-1].removesuffix(".trigger"))
    return started


def test_backlog_and_live_triggers_are_drained(project: Project) -> None:
    for number in range(5):
        project.trigger(f"backlog-{number}.trigger", f"agent-{number % 2}")
    project.start(PARALLEL_DAEMON="true")
    project.wait_archived(5)
    for number in range(5):
        project.trigger(f"live-{number}.trigger", f"agent-{number % 3}")
    archived = project.wait_archived(10)
    assert set(archived.values()) == {"done"}
    assert not list(project.paths.running.iterdir())
    assert len(project.journal("start")) == 10


def test_agent_gets_its_environment_arguments_and_no_stdin(project: Project) -> None:
    project.trigger("t.trigger", "junior-dev-a", ticket=52, action="implement_ticket",
                    from_agent="orchestrator")
    project.start(AGENT_COMMAND=f"{project.settings['AGENT_COMMAND']} {{agent}} {{ticket}} "
                                "{action} {from_agent} {run_id} msg={agent}/{ticket}")
    project.wait_archived(1)
    start = project.journal("start")[0]
    env = start["env"]
    assert env["STARFORGE_AGENT"] == "junior-dev-a"
    assert env["STARFORGE_TICKET"] == "52"
    assert env["STARFORGE_ACTION"] == "implement_ticket"
    assert env["STARFORGE_FROM_AGENT"] == "orchestrator"
    assert env["STARFORGE_PROJECT_DIR"] == str(project.root)
    assert env["STARFORGE_TRIGGER_FILE"] == str(project.paths.running / "t.trigger")
    run_id = env["STARFORGE_RUN_ID"]
    assert start["argv"] == ["junior-dev-a", "52", "implement_ticket", "orchestrator", run_id,
                             "msg=junior-dev-a/52"]
    assert start["stdin"] == "", "AGENT_STDIN=auto hands the prompt on stdin to claude only"
    assert start["cwd"] == str(project.root)
    assert start["sid"] == start["pid"], "the agent leads its own session"
    log = project.paths.logs / f"{run_id}.log"
    assert log.exists() and run_id.startswith("junior-dev-a-")


def test_oldest_first_and_busy_agent_does_not_block_others(project: Project) -> None:
    base = time.time_ns() - 10_000_000_000
    project.trigger("a1.trigger", "agent-a", mtime_ns=base, context={"gate": "a1"})
    project.trigger("a2.trigger", "agent-a", mtime_ns=base + 1_000_000)
    project.trigger("b1.trigger", "agent-b", mtime_ns=base + 2_000_000)
    project.trigger("b2.trigger", "agent-b", mtime_ns=base + 3_000_000)
    project.start(PARALLEL_DAEMON="true")
    # agent-b's triggers go ahead while agent-a is held on a1, and a2 waits for it
    wait_until(lambda: project.archived("done") == ["b1.trigger", "b2.trigger"],
               what="agent-b's triggers done")
    order = project.started()
    assert "a1.trigger" in order and "a2.trigger" not in order
    assert order.index("b1.trigger") < order.index("b2.trigger")
    project.open_gate("a1")
    project.wait_archived(4)
    assert project.started()[-1] == "a2.trigger"


def test_ties_in_time_are_broken_by_name_and_same_agent_never_overtakes(project: Project) -> None:
    stamp = time.time_ns() - 5_000_000_000
    for name in ("c.trigger", "a.trigger", "b.trigger"):
        project.trigger(name, "agent-a", mtime_ns=stamp)
    project.trigger("z-older.trigger", "agent-a", mtime_ns=stamp - 1_000_000)
    project.start(PARALLEL_DAEMON="true")
    project.wait_archived(4)
    assert project.started() == ["z-older.trigger", "a.trigger", "b.trigger", "c.trigger"]


def test_concurrency_limit_is_reached_and_never_exceeded(project: Project) -> None:
    for number in range(12):
        project.trigger(f"t{number:02}.trigger", f"agent-{number}", context={"gate": "open"})
    project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=4)
    wait_until(lambda: len(project.journal("start")) >= 4, what="four runs held at the gate")
    assert (len(project.journal("start")), project.journal("end")) == (4, [])
    project.open_gate("open")
    project.wait_archived(12)
    assert max_overlap(project) == 4


def test_one_run_per_agent_name_even_in_parallel_mode(project: Project) -> None:
    for number in range(4):
        project.trigger(f"t{number}.trigger", "solo", context={"gate": f"t{number}"})
    project.start(PARALLEL_DAEMON="true")
    release_one_at_a_time(project, 4)
    project.wait_archived(4)


def test_sequential_mode_never_runs_two_at_once_and_keeps_fifo(project: Project) -> None:
    base = time.time_ns() - 10_000_000_000
    for number in range(6):
        project.trigger(f"t{number}.trigger", f"agent-{number % 3}", mtime_ns=base + number,
                        context={"gate": f"t{number}"})
    project.start(PARALLEL_DAEMON="false")
    assert release_one_at_a_time(project, 6) == [f"t{n}.trigger" for n in range(6)]
    project.wait_archived(6)
    assert "Sequential execution" in project.log()


def test_each_outcome_lands_in_its_folder_with_the_reason(project: Project) -> None:
    project.trigger("ok.trigger", "agent-ok")
    project.trigger("bad.trigger", "agent-bad", context={"exit": 3})
    project.raw_trigger("junk.trigger", b"{not json")
    project.trigger("slow.trigger", "agent-slow", context={"sleep": 30})
    project.start(PARALLEL_DAEMON="true", AGENT_TIMEOUT=1)
    archived = project.wait_archived(4)
    assert archived == {"ok.trigger": "done", "bad.trigger": "failed",
                        "junk.trigger": "invalid", "slow.trigger": "failed"}
    ok = project.result("ok.trigger")
    assert ok["outcome"] == "succeeded" and ok["exit_code"] == 0
    assert ok["started_at"] and ok["ended_at"] and ok["duration_s"] >= 0
    assert os.path.exists(ok["log"])
    bad = project.result("bad.trigger")
    assert (bad["outcome"], bad["exit_code"], bad["reason"]) == ("failed", 3,
                                                                 "exited with status 3")
    assert project.result("junk.trigger")["reason"].startswith("not valid JSON")
    slow = project.result("slow.trigger")
    assert slow["outcome"] == "timed_out" and "timed out after 1s" in slow["reason"]
    assert "TIMEOUT" in project.log()


def test_timed_out_agent_and_its_grandchild_are_gone(project: Project) -> None:
    project.trigger("t.trigger", "stubborn",
                    context={"sleep": 60, "ignore_term": True, "grandchild": True})
    project.start(AGENT_TIMEOUT=1, AGENT_KILL_GRACE=0.5)
    project.wait_archived(1)
    assert project.result("t.trigger")["outcome"] == "timed_out"
    pids = [e["pid"] for e in project.journal() if e["event"] in ("start", "grandchild")]
    assert len(pids) == 2
    wait_until(lambda: all(gone(pid) for pid in pids), 5, "agent processes gone")


def test_stop_while_agents_run_leaves_nothing_behind(project: Project) -> None:
    for number in range(3):
        project.trigger(f"t{number}.trigger", f"agent-{number}",
                        context={"sleep": 60, "grandchild": True, "ignore_term": number == 0})
    project.start(PARALLEL_DAEMON="true")
    wait_until(lambda: len(project.journal("grandchild")) == 3, what="three agents and children")
    daemon = project.daemon_pid()
    project.stop()
    assert gone(daemon)
    assert not project.paths.pid_file.exists()
    pids = [e["pid"] for e in project.journal()]
    assert all(gone(pid) for pid in pids)
    archived = project.all_archived()
    assert archived == {f"t{n}.trigger": "failed" for n in range(3)}
    assert all(project.result(name)["outcome"] == "killed" for name in archived)
    assert list(project.paths.triggers.glob("*.trigger")) == []
    assert "SHUTDOWN" in project.log()


def test_status_exit_codes_and_second_start(project: Project) -> None:
    assert project.cli("daemon", "status", check=False).returncode == 3
    stopped = json.loads(project.cli("daemon", "status", "--json", check=False).stdout)
    assert stopped["running"] is False
    project.trigger("t.trigger", "agent-a", context={"sleep": 60}, ticket="T-9")
    pid = project.start()
    wait_until(lambda: project.slots().get("agent-a", {}).get("pid"), what="slot pid")
    result = project.cli("daemon", "status")
    assert "agent-a" in result.stdout and "busy" in result.stdout and "T-9" in result.stdout
    doc = json.loads(project.cli("daemon", "status", "--json").stdout)
    assert doc["running"] and doc["pid"] == pid and doc["mode"] == "sequential"
    assert doc["slots"][0]["agent"] == "agent-a" and doc["slots"][0]["status"] == "busy"
    second = project.cli("daemon", "start", check=False)
    assert second.returncode != 0 and "already running" in second.stderr
    assert project.daemon_pid() == pid
    project.stop()
    assert project.cli("daemon", "status", check=False).returncode == 3


def test_bad_setting_stops_the_start_with_a_message(project: Project) -> None:
    project.write_env(MAX_CONCURRENT_AGENTS="lots")
    result = project.cli("daemon", "start", check=False)
    assert result.returncode != 0
    assert "MAX_CONCURRENT_AGENTS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not project.paths.pid_file.exists()


def test_reaping_follows_the_exit_not_the_sweep(project: Project) -> None:
    for number in range(20):
        project.trigger(f"t{number:02}.trigger", "quick")
    # one agent, so one run at a time, and no sweep is due while the test lasts: the runs are
    # reaped (and the next started) only if their exits alone drive it. How fast that is, the
    # bench measures: slot-turnaround (exit to next start), many-at-once (exit to reap).
    project.start(PROCESS_MONITOR_INTERVAL=3600, AGENT_COMMAND="true")
    assert set(project.wait_archived(20).values()) == {"done"}
