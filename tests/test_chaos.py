"""Chaos: hundreds of triggers, the daemon and the keeper SIGKILLed at random moments (the
daemon restarted at once; a killed keeper is replaced by the daemon at its next run). The
driver is shared with ``bench/chaos.py``, which runs ten thousand."""

from __future__ import annotations

import random

from chaos_run import run_chaos
from conftest import Project

TRIGGERS = 300


def test_daemon_kills_lose_nothing_run_nothing_twice(project: Project) -> None:
    tally = run_chaos(project, 20251025, ["daemon"] * 5, TRIGGERS)
    assert tally.clean, tally.problems
    assert project.log().count("adopted a run that is still going") >= 5


def test_daemon_and_keeper_kills_lose_nothing_and_call_nothing_lost(project: Project) -> None:
    kills = ["daemon", "keeper"] * 12
    random.Random(20261203).shuffle(kills)
    tally = run_chaos(project, 20261203, kills, TRIGGERS)
    assert tally.clean, tally.problems
