"""Sequential hand-over: while one run goes, the next triggers wait on deck (claimed, handed to
the keeper) and start the moment the run before ends; a stop, a pause, a trigger that outranks
them or a crash puts them back in the queue, and none runs twice or beside another."""

from __future__ import annotations

import json

from conftest import Project, wait_until
from test_cli import queue_doc
from test_keeper_death import kill_keeper
from test_recovery import kill_daemon


def on_deck(project: Project) -> list[str]:
    """The triggers claimed into ``running/`` whose run has not started."""
    started = set(project.started())
    return sorted(path.name for path in project.paths.running.glob("*.trigger")
                  if path.name not in started)


def hand_overs(project: Project, name: str) -> int:
    """How many runs the daemon's journal has recorded for trigger ``name``."""
    return sum(1 for path in project.paths.runs.glob("*.jsonl")
               for line in path.read_text().splitlines()
               if json.loads(line).get("run", {}).get("trigger_name") == name)


def one_at_a_time(project: Project) -> None:
    """Every run ended before the next one started (the agents' own journal lines)."""
    events = [(entry["event"], entry["run_id"]) for entry in project.journal()]
    assert events[0::2] == [("start", run_id) for _, run_id in events[0::2]], events
    assert [run_id for _, run_id in events[0::2]] == [run_id for _, run_id in events[1::2]]


def t2_on_deck(project: Project) -> None:
    """t1 runs until its gate g1 opens; t2 waits on deck behind it."""
    project.trigger("t1.trigger", "agent-a", context={"gate": "g1"})
    project.trigger("t2.trigger", "agent-b")
    project.start()
    wait_until(lambda: on_deck(project) == ["t2.trigger"], what="t2 on deck")


def test_the_next_triggers_wait_on_deck_and_start_in_order(project: Project) -> None:
    project.trigger("t1.trigger", "agent-a", context={"gate": "g1"})
    project.trigger("t2.trigger", "agent-b", context={"gate": "g2"})
    project.trigger("t3.trigger", "agent-a")
    project.trigger("t4.trigger", "agent-b")
    project.start()
    wait_until(lambda: project.started() == ["t1.trigger"], what="t1 started")
    wait_until(lambda: on_deck(project) == ["t2.trigger", "t3.trigger"], what="two on deck")
    wait_until(lambda: project.slots().get("agent-a", {}).get("status") == "busy",
               what="agent-a busy")
    assert "agent-b" not in project.slots()  # t2 on deck has not begun
    state = lambda: json.loads(project.paths.state_file.read_text())  # noqa: E731
    wait_until(lambda: (state()["running"], state()["queued"]) == (1, 3),
               what="the state file: one running, three queued (two of them on deck)")
    pending = {entry["name"]: (entry["state"], entry["note"]) for entry in
               queue_doc(project)["pending"]}
    handed = ("next", "handed over: starts as the run before it ends")
    assert pending == {"t2.trigger": handed, "t3.trigger": handed,
                       "t4.trigger": ("queued", "run limit reached")}
    project.open_gate("g1")
    wait_until(lambda: project.started() == ["t1.trigger", "t2.trigger"], what="t2 started")
    project.open_gate("g2")
    archived = project.wait_archived(4)
    assert archived == dict.fromkeys(["t1.trigger", "t2.trigger", "t3.trigger", "t4.trigger"],
                                     "done")
    assert project.started() == ["t1.trigger", "t2.trigger", "t3.trigger", "t4.trigger"]
    one_at_a_time(project)
    wait_until(lambda: state()["queued"] == 0, what="the state file: nothing queued")


def test_a_pause_takes_back_the_runs_on_deck(project: Project) -> None:
    t2_on_deck(project)
    project.cli("queue", "pause")  # answered once t2 is back in the queue: nothing starts after this
    project.open_gate("g1")
    project.wait_archived(1)
    assert not [line for line in project.log().splitlines()
                if " SPAWNED " in line and "t2.trigger" in line]
    assert project.started() == ["t1.trigger"]
    project.cli("queue", "resume")
    project.wait_archived(2)
    assert project.started() == ["t1.trigger", "t2.trigger"]
    one_at_a_time(project)


def test_a_health_check_leaves_the_runs_on_deck_where_they_are(project: Project) -> None:
    t2_on_deck(project)
    assert hand_overs(project, "t2.trigger") == 1
    for _ in range(3):  # a request that changes something would take t2 back, then hand it again
        checked = project.cli("daemon", "status", "--check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert on_deck(project) == ["t2.trigger"]
    assert hand_overs(project, "t2.trigger") == 1
    project.open_gate("g1")
    project.wait_archived(2)
    assert project.started() == ["t1.trigger", "t2.trigger"]
    one_at_a_time(project)


def test_a_trigger_that_outranks_the_one_on_deck_starts_before_it(project: Project) -> None:
    t2_on_deck(project)
    project.trigger("urgent.trigger", "agent-c", priority=5)
    wait_until(lambda: on_deck(project) == ["urgent.trigger"] or
               on_deck(project) == ["t2.trigger", "urgent.trigger"],
               what="the urgent one on deck first")
    project.open_gate("g1")
    project.wait_archived(3)
    assert project.started() == ["t1.trigger", "urgent.trigger", "t2.trigger"]
    one_at_a_time(project)


def test_a_stop_leaves_the_runs_on_deck_for_the_next_start(project: Project) -> None:
    project.trigger("t1.trigger", "agent-a", context={"gate": "g1"})
    project.trigger("t2.trigger", "agent-b")
    project.trigger("t3.trigger", "agent-c")
    project.start()
    wait_until(lambda: on_deck(project) == ["t2.trigger", "t3.trigger"], what="two on deck")
    project.stop()  # t1 stopped; t2 and t3 never begun
    assert project.started() == ["t1.trigger"]
    project.open_gate("g1")
    project.start()
    project.wait_archived(3)
    started = project.started()
    assert started[-2:] == ["t2.trigger", "t3.trigger"] and started.count("t2.trigger") == 1


def test_a_killed_daemon_leaves_its_runs_on_deck_to_the_next_one(project: Project) -> None:
    t2_on_deck(project)
    kill_daemon(project)
    project.open_gate("g1")  # the keeper, its daemon gone, starts nothing behind t1
    wait_until(lambda: [entry["event"] for entry in project.journal()] == ["start", "end"],
               what="t1 ended")
    project.start()
    archived = project.wait_archived(2)
    assert archived == {"t1.trigger": "done", "t2.trigger": "done"}
    assert project.started() == ["t1.trigger", "t2.trigger"]
    one_at_a_time(project)


def test_a_killed_keeper_leaves_its_runs_on_deck_to_a_new_one(project: Project) -> None:
    t2_on_deck(project)
    kill_keeper(project)
    project.open_gate("g1")  # t1 goes on without its keeper; t2 waits for the daemon
    archived = project.wait_archived(2)
    assert archived == {"t1.trigger": "done", "t2.trigger": "done"}
    assert project.started() == ["t1.trigger", "t2.trigger"]
    one_at_a_time(project)
