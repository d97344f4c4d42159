"""How a keeper's reaper tells which run an orphaned agent belongs to when the keeper died
between beginning its spawn (the ``spawning`` line) and journalling it (``started``): only a
spawn its own keeper began counts, however recent another keeper's is."""

from __future__ import annotations

import json
from pathlib import Path

from starforge_daemon.runtime.local.reaper import Reaper

NOW = 90_000.0  # seconds since boot, the clock of the journals' spawning lines


def begun(runs: Path, run_id: str, at: float, keeper: int) -> Path:
    path = runs / f"{run_id}.jsonl"
    lines = [{"run_id": run_id, "run": {"trigger": f"{run_id}.trigger"}},
             {"run_id": run_id, "spawning": at, "keeper": keeper}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_an_agent_is_matched_to_its_own_keepers_spawn_when_another_keeper_began_one_as_recently(
        tmp_path: Path) -> None:
    # keeper 111 died spawning run a (its agent lives on under its reaper); the next keeper,
    # 222, died 10 ms later spawning run b: each reaper finds its own run for an agent that
    # started just after both spawns began
    first = begun(tmp_path, "a", NOW, keeper=111)
    second = begun(tmp_path, "b", NOW + 0.01, keeper=222)
    assert Reaper(111, str(tmp_path), NOW - 5).find_run(4321, NOW + 0.02, True) == (str(first), "a")
    assert Reaper(222, str(tmp_path), NOW - 1).find_run(4322, NOW + 0.02, True) == (str(second), "b")


def test_a_spawn_begun_before_the_keeper_was_forked_is_another_keepers(tmp_path: Path) -> None:
    begun(tmp_path, "a", NOW, keeper=111)  # a keeper long gone had the same pid
    reaper = Reaper(111, str(tmp_path), NOW + 0.5)
    assert reaper.find_run(4321, NOW + 0.6, True) is None


def test_only_the_leader_of_its_own_session_is_taken_for_an_agent(tmp_path: Path) -> None:
    path = begun(tmp_path, "a", NOW, keeper=111)
    reaper = Reaper(111, str(tmp_path), NOW - 1)
    assert reaper.find_run(4321, NOW + 0.01, False) is None  # something the agent started
    assert reaper.find_run(4321, NOW + 0.01, True) == (str(path), "a")
