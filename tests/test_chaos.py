"""Chaos: hundreds of triggers, the daemon SIGKILLed and restarted at random moments."""

from __future__ import annotations

import random
import time
from collections import Counter

from conftest import Project, wait_until
from test_recovery import kill_daemon

TRIGGERS = 300
KILLS = 5


def test_nothing_lost_nothing_run_twice_outcomes_true(project: Project) -> None:
    rng = random.Random(20251025)
    expected = {}
    for number in range(TRIGGERS):
        code = rng.choice((0, 0, 0, 1, 3, 42))
        name = f"t{number:03}.trigger"
        expected[name] = code
        project.trigger(name, f"agent-{number % 8}",
                        context={"sleep": rng.uniform(0, 0.15), "exit": code})
    # the oldest trigger's run is held until the last restart: each restart must adopt it
    project.trigger("held.trigger", "held", mtime_ns=time.time_ns() - 10_000_000_000,
                    context={"gate": "held"})
    expected["held.trigger"] = 0
    project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=8, AGENT_TIMEOUT=120)
    kill_points = sorted(rng.sample(range(20, TRIGGERS - 20), KILLS))
    for point in kill_points:
        wait_until(lambda p=point: len(project.all_archived()) >= p, 60, f"{point} archived")
        kill_daemon(project)
        project.start()
    project.open_gate("held")
    archived = project.wait_archived(len(expected), timeout=60)

    assert set(archived) == set(expected), "every trigger archived, each exactly once"
    assert not list(project.paths.running.iterdir())
    assert not list(project.paths.triggers.glob("*.trigger"))
    starts = Counter(project.started())
    assert set(starts.values()) == {1}, "no trigger's agent ran twice"
    for name, code in expected.items():
        result = project.result(name)
        assert result["exit_code"] == code, (name, result)
        assert archived[name] == ("done" if code == 0 else "failed")
    wait_until(lambda: all(slot["status"] == "idle" for slot in project.slots().values()),
               what="every slot idle")
    assert project.log().count("adopted a run that is still going") >= KILLS
