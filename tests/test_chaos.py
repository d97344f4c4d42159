"""Chaos: hundreds of triggers, the daemon and the keeper SIGKILLed at random moments (the
daemon restarted at once; a killed keeper is replaced by the daemon at its next run)."""

from __future__ import annotations

import random
import time
from collections import Counter

from conftest import Project, wait_until
from test_keeper_death import kill_keeper
from test_recovery import kill_daemon

TRIGGERS = 300


def run_chaos(project: Project, seed: int, kills: list[str]) -> None:
    """``kills``: "daemon" or "keeper", in order, each at a random number of archived
    triggers. Every trigger must be archived exactly once with its agent's real exit status,
    its agent run once, and no run called lost."""
    rng = random.Random(seed)
    expected = {}
    for number in range(TRIGGERS):
        code = rng.choice((0, 0, 0, 1, 3, 42))
        name = f"t{number:03}.trigger"
        expected[name] = code
        context = {"sleep": rng.uniform(0, 0.15), "exit": code}
        if number % 3 == 0:  # writing while the keeper may die
            context["output"] = 20_000
        project.trigger(name, f"agent-{number % 8}", context=context)
    # the oldest trigger's run is held until the end: each restart must adopt it
    project.trigger("held.trigger", "held", mtime_ns=time.time_ns() - 10_000_000_000,
                    context={"gate": "held"})
    expected["held.trigger"] = 0
    project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=8, AGENT_TIMEOUT=120)
    # in the first half, so that runs are still being asked for at every kill
    points = sorted(rng.sample(range(10, TRIGGERS // 2), len(kills)))
    for point, kind in zip(points, kills, strict=True):
        wait_until(lambda p=point: len(project.all_archived()) >= p, 60, f"{point} archived")
        if kind == "daemon":
            kill_daemon(project)
            project.start()
        else:
            kill_keeper(project)
    project.open_gate("held")
    archived = project.wait_archived(len(expected), timeout=60)

    assert set(archived) == set(expected), "every trigger archived, each exactly once"
    assert not list(project.paths.running.iterdir())
    assert not list(project.paths.triggers.glob("*.trigger"))
    starts = Counter(project.started())
    assert set(starts.values()) == {1}, "no trigger's agent ran twice"
    for name, code in expected.items():
        result = project.result(name)
        assert result["outcome"] != "lost", (result, [line for line in project.log().splitlines()
                                                      if result["run_id"] in line])
        assert result["exit_code"] == code, (name, result)
        assert archived[name] == ("done" if code == 0 else "failed")
    wait_until(lambda: all(slot["status"] == "idle" for slot in project.slots().values()),
               what="every slot idle")


def test_daemon_kills_lose_nothing_run_nothing_twice(project: Project) -> None:
    run_chaos(project, 20251025, ["daemon"] * 5)
    assert project.log().count("adopted a run that is still going") >= 5


def test_daemon_and_keeper_kills_lose_nothing_and_call_nothing_lost(project: Project) -> None:
    kills = ["daemon", "keeper"] * 12
    random.Random(20261203).shuffle(kills)
    run_chaos(project, 20261203, kills)
