"""At most once: a trigger whose run may have started, as far as the evidence an earlier daemon
left says (torn or junk journal lines, a spawn begun and never journalled), goes to ``failed/``
as "unknown: may have run" instead of running again; ``starforge retry`` runs it. Where the
evidence proves nothing ran, it is queued again; where the keeper holds the run, it is adopted."""

from __future__ import annotations

import json
import time

import pytest
from conftest import Project, gone, wait_until
from test_recovery import kill_daemon

from starforge_daemon.core.models import Run

UNKNOWN = "unknown: may have run"


def left_in_flight(project: Project, name: str, *lines: dict) -> Run:
    """``name`` claimed into ``running/`` by an earlier daemon, and its run journalled with
    ``lines`` after the ``run`` line (the run id filled in)."""
    project.paths.ensure()
    trigger = project.paths.running / name
    trigger.write_text(json.dumps({"to_agent": "worker"}))
    run = Run(run_id="worker-1-abcdef", agent="worker", trigger_name=name,
              trigger_path=str(trigger), log_path=str(project.paths.logs / "w.log"),
              started_at=time.time() - 10, timeout=600)
    records = [{"run_id": run.run_id, "run": run.to_dict()}]
    records += [{"run_id": run.run_id, **line} for line in lines]
    (project.paths.runs / "1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def assert_unknown_then_retried(project: Project, name: str) -> dict:
    """Archived to ``failed/`` as unknown, not run, one RECOVERY line; ``retry`` runs it once."""
    archived = project.wait_archived(1)
    assert archived == {name: "failed"}
    result = project.result(name)
    assert result["outcome"] == "failed" and result["reason"].startswith(UNKNOWN), result
    assert project.started() == [], "not run again"
    said = [line for line in project.log().splitlines() if "cannot tell whether its run" in line]
    assert len(said) == 1 and "RECOVERY" in said[0] and name in said[0], said
    project.cli("retry", name)
    wait_until(lambda: project.all_archived() == {name: "done"}, 15, "the retried run")
    assert project.started() == [name]
    return result


def test_a_torn_run_line_leaves_it_unknown_and_retry_runs_it(project: Project) -> None:
    """The journal's only line, the trigger's ``run`` line, was cut short: its run may have
    been asked for."""
    left_in_flight(project, "t.trigger")
    journal = project.paths.runs / "1.jsonl"
    journal.write_bytes(journal.read_bytes()[:70])
    project.start()
    result = assert_unknown_then_retried(project, "t.trigger")
    assert "damaged lines in 1.jsonl" in result["reason"]


def test_a_junk_line_where_the_keeper_wrote_leaves_it_unknown(project: Project) -> None:
    run = left_in_flight(project, "t.trigger")
    with (project.paths.runs / "1.jsonl").open("ab") as journal:
        journal.write(b"\x00\xffjunk where the started line was\n")
    project.start()
    result = assert_unknown_then_retried(project, "t.trigger")
    assert result["run_id"] == run.run_id and "damaged line" in result["reason"]


def test_a_spawn_begun_and_never_journalled_leaves_it_unknown(project: Project) -> None:
    """``spawning`` and nothing more: its keeper and reaper died during the spawn, and no
    process of the run is found; nobody can say whether the agent ran."""
    left_in_flight(project, "t.trigger", {"spawning": time.clock_gettime(time.CLOCK_BOOTTIME) - 9})
    project.start()
    result = assert_unknown_then_retried(project, "t.trigger")
    assert "began its spawn" in result["reason"]


@pytest.mark.parametrize("lines", [[], [{"spawning": 1.0}, {"unspawned": True}]],
                         ids=["no keeper line", "unspawned"])
def test_a_run_proven_never_spawned_is_queued_again(project: Project, lines: list) -> None:
    left_in_flight(project, "t.trigger", *lines)
    project.start()
    project.wait_archived(1)
    assert project.all_archived() == {"t.trigger": "done"}
    assert project.started() == ["t.trigger"]
    assert "claimed but never started; queued again" in project.log()


def test_runs_the_keeper_holds_are_adopted_without_their_journal_lines(project: Project) -> None:
    """The keeper's ``spawning`` and ``started`` lines never reached the journal (a refused
    write the keeper still holds): the keeper's list of its runs says they run."""
    project.trigger("t.trigger", "worker", context={"gate": "G", "exit": 3})
    project.start()
    pid = wait_until(lambda: project.journal("start"), what="agent started")[0]["pid"]
    kill_daemon(project)
    journal = next(project.paths.runs.glob("*.jsonl"))
    journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                               if '"run":' in line))
    project.start()
    assert project.slots()["worker"]["pid"] == str(pid), "adopted"
    project.open_gate("G")
    project.wait_archived(1)
    assert (project.result("t.trigger")["exit_code"], project.started()) == (3, ["t.trigger"])


def test_journals_turned_to_junk_while_the_keeper_holds_runs(project: Project) -> None:
    """No journal names the keeper's runs: which trigger is whose cannot be told. Each trigger
    goes to ``failed/`` as unknown, and the runs are stopped (their agents' names are free for
    the next runs); none runs twice."""
    names = [f"{agent}.trigger" for agent in ("a", "b", "c")]
    for name in names:
        project.trigger(name, name[0], context={"gate": "G"})
    project.start(PARALLEL_DAEMON="true")
    pids = [start["pid"] for start in wait_until(
        lambda: len(project.journal("start")) == 3 and project.journal("start"), what="3 runs")]
    kill_daemon(project)
    for journal in project.paths.runs.glob("*.jsonl"):
        journal.write_bytes(b"\x00junk\n" * 3)
    project.start()
    archived = project.wait_archived(3)
    assert archived == dict.fromkeys(names, "failed")
    for name in names:
        reason = project.result(name)["reason"]
        assert reason.startswith(UNKNOWN) and "damaged lines" in reason, reason
    wait_until(lambda: all(gone(pid) for pid in pids), 10, "the unnamed runs stopped")
    assert "stopped 3 run(s) the keeper held that no journal names" in project.log()
    project.open_gate("G")
    project.trigger("next.trigger", "a")
    project.wait_archived(4)
    assert sorted(project.started()) == sorted([*names, "next.trigger"]), "none ran twice"

