"""Schedules on the real daemon: a one-second schedule whose run outlasts several windows
enqueues nothing more until that run ends, then fires once for the missed window, then a whole
interval later; ``starforge schedules`` shows them."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from conftest import Project, wait_until

from starforge_daemon.store.schedules_file import read_schedules

CHECKOUT = Path(__file__).resolve().parent.parent

SCHEDULES = """\
[tick]
agent = "agent-a"
action = "check_board"
every = "1s"
context = { gate = "GATE" }

[broken]
agent = "agent-b"
cron = "61 * * * *"
"""


def fired(project: Project) -> list[str]:
    """The triggers the schedules wrote, in order, from the event log."""
    return re.findall(r"SCHEDULE due; trigger written .*trigger=(\S+)", project.log())


def fired_at(name: str) -> float:
    """When a firing happened: its trigger's name holds the daemon's clock in nanoseconds."""
    return int(re.fullmatch(r"schedule-tick-(\d+)\.trigger", name).group(1)) / 1e9


def test_a_schedule_fires_once_after_a_long_run_and_never_piles_up(project: Project) -> None:
    project.paths.schedules_file.write_text(SCHEDULES)
    project.start(PROCESS_MONITOR_INTERVAL=5)  # the schedule's own windows wake the daemon
    wait_until(lambda: project.started(), 15, "the first scheduled run")
    wait_until(lambda: "still queued or running" in project.log(), 10,
               "a window passing while the first run goes on")
    [first] = fired(project)
    # the scenario is the clock's: the run goes on while two more windows pass
    wait_until(lambda: time.time() > fired_at(first) + 2.2, 10, "two windows")
    assert fired(project) == [first]
    assert list(project.paths.triggers.glob("*.trigger")) == []  # nothing more was queued
    assert re.search(r"ERROR +SCHEDULE .*\[broken\]: cron: '61 \* \* \* \*'", project.log())

    project.open_gate("GATE")
    wait_until(lambda: len(project.started()) >= 3, 15, "two more scheduled runs")
    names = fired(project)
    first_end = project.journal("end")[0]["time"]
    assert fired_at(names[1]) > first_end  # the missed windows: one trigger, once it ended
    assert fired_at(names[2]) - fired_at(names[1]) >= 1.0 - 1e-6  # then a whole interval
    assert project.started()[:3] == names[:3]
    archived = json.loads((project.paths.processed / first).read_text())
    assert archived["schedule"] == "tick" and archived["dedupe_key"] == "schedule:tick"
    assert archived["action"] == "check_board"

    listing = json.loads(project.cli("schedules", "--json", check=False).stdout)
    [row] = listing["schedules"]
    assert (row["name"], row["kind"], row["expression"], row["agent"]) == \
        ("tick", "every", "1s", "agent-a")
    assert row["last_fired"] is not None
    assert list(listing["invalid"]) == ["broken"]
    assert "Traceback" not in project.log()


def test_schedules_lists_kind_expression_agent_last_and_next(project: Project) -> None:
    project.paths.schedules_file.write_text(
        '[nightly]\nagent = "reviewer"\ncron = "0 2 * * *"\n\n'
        '[board]\nagent = "orchestrator"\nevery = "10m"\n\n'
        '[standup]\nagent = "lead"\ncron = "0 9 * * 1-5"\ntimezone = "Europe/Paris"\n')
    project.paths.daemon_dir.mkdir(parents=True)
    project.paths.schedules_state.write_text(json.dumps(
        {"board": {"since": "2025-12-03T09:00:00Z", "last_fired": "2025-12-03T09:50:00Z"}}))
    shown = project.cli("schedules").stdout.splitlines()
    assert shown[0].split() == ["SCHEDULE", "KIND", "EXPRESSION", "AGENT", "LAST", "FIRED",
                                "NEXT", "DUE"]
    assert re.match(r"nightly +cron +0 2 \* \* \* +reviewer +never +\S+T02:00:00Z \(in ",
                    shown[2])
    assert re.match(r"board +every +10m +orchestrator +2025-12-03T09:50:00Z \(\S+ ago\) +"
                    r"2025-12-03T10:00:00Z \(due\)", shown[3])
    assert re.match(r"standup +cron +0 9 \* \* 1-5 \(Europe/Paris\) +lead +never +\S+T0[78]:00:00Z",
                    shown[4])

    project.paths.schedules_file.write_text('[board]\nagent = "orchestrator"\nevery = "soon"\n')
    result = project.cli("schedules", check=False)
    assert result.returncode == 1
    assert "invalid schedule [board]: every: 'soon' is not a duration" in result.stderr
    project.paths.schedules_file.write_text("[board\n")
    result = project.cli("schedules", check=False)
    assert result.returncode == 1 and "not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_leaves_an_example_schedules_file_that_works_once_renamed(project: Project) -> None:
    project.cli("init")
    example = project.paths.claude / "schedules.toml.example"
    assert example.read_text() == (CHECKOUT / "templates" / "schedules.toml").read_text()
    found = read_schedules(example)
    assert [schedule.name for schedule in found.schedules] == ["board-check", "daily-review"]
    assert found.problems == {}
