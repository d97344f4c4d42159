"""Chaos: many triggers, the daemon and the keeper SIGKILLed at random moments (the daemon
restarted at once; a killed keeper is replaced by the daemon at its next run), then a tally of
what became of every trigger. Shared by ``tests/test_chaos.py`` (a few hundred triggers) and
``bench/chaos.py`` (ten thousand)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from conftest import FOLDERS, Project, wait_until
from test_keeper_death import kill_keeper
from test_recovery import kill_daemon

UNKNOWN = "unknown: may have run"
POLL = 0.05  # seconds between two looks at the archives (listing thousands of files costs)


@dataclass
class ChaosTally:
    """What became of the triggers of one chaos run."""

    triggers: int
    daemon_kills: int
    keeper_kills: int
    seconds: float = 0.0
    archived_once: int = 0
    lost: int = 0
    unknown: int = 0
    run_twice: int = 0
    wrong_outcomes: int = 0
    problems: list[str] = field(default_factory=list)  # one line per trigger gone wrong

    @property
    def clean(self) -> bool:
        return (self.archived_once == self.triggers and not self.problems
                and not (self.lost or self.unknown or self.run_twice or self.wrong_outcomes))


def archived_count(project: Project) -> int:
    """How many triggers are archived (by counting directory entries: cheap enough to poll)."""
    count = 0
    for folder in FOLDERS.values():
        base = project.paths.triggers / folder
        if base.is_dir():
            with os.scandir(base) as entries:
                count += sum(entry.name.endswith(".trigger") for entry in entries)
    return count


def wait_archived(project: Project, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while archived_count(project) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {count} archived "
                                 f"triggers (have {archived_count(project)})")
        time.sleep(POLL)


def write_triggers(project: Project, rng: random.Random, count: int) -> dict[str, int]:
    """``count`` triggers for 8 agents, each with the exit status its agent will have; a third
    of them write 20 kB (while the keeper may die). The oldest trigger's run is held until the
    end, so that each restart must adopt it."""
    expected = {}
    width = len(str(count - 1))
    for number in range(count):
        code = rng.choice((0, 0, 0, 1, 3, 42))
        name = f"t{number:0{width}}.trigger"
        expected[name] = code
        context = {"sleep": rng.uniform(0, 0.15), "exit": code}
        if number % 3 == 0:
            context["output"] = 20_000
        project.trigger(name, f"agent-{number % 8}", context=context)
    project.trigger("held.trigger", "held", mtime_ns=time.time_ns() - 10_000_000_000,
                    context={"gate": "held"})
    expected["held.trigger"] = 0
    return expected


def run_chaos(project: Project, seed: int, kills: list[str], triggers: int,
              settle_timeout: float = 60) -> ChaosTally:
    """``kills``: "daemon" or "keeper", in order, each once a random number of triggers (in the
    first half) are archived, so that runs are still being asked for at every kill."""
    rng = random.Random(seed)
    expected = write_triggers(project, rng, triggers)
    began = time.monotonic()
    # the held run lasts the whole chaos run: no timeout may end it first
    project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=8,
                  AGENT_TIMEOUT=max(120, triggers))
    points = sorted(rng.sample(range(10, triggers // 2), len(kills)))
    for point, kind in zip(points, kills, strict=True):
        wait_archived(project, point, settle_timeout)
        if kind == "daemon":
            kill_daemon(project)
            project.start()
        else:
            kill_keeper(project)
    project.open_gate("held")
    wait_archived(project, len(expected), settle_timeout + triggers * 0.05)
    tally = ChaosTally(len(expected), kills.count("daemon"), kills.count("keeper"),
                       time.monotonic() - began)
    wait_until(lambda: all(slot["status"] == "idle" for slot in project.slots().values()),
               what="every slot idle")
    return judge(project, expected, tally)


def judge(project: Project, expected: dict[str, int], tally: ChaosTally) -> ChaosTally:
    """Tally every trigger: archived exactly once, its agent run once, with the outcome its agent
    really had; lost and unknown counted apart."""
    archived = project.all_archived()
    starts = Counter(project.started())
    for name in sorted(set(archived) - set(expected)):
        tally.problems.append(f"{name}: archived under a name no trigger had")
    for folder in ("running", ""):
        for path in (project.paths.triggers / folder).glob("*.trigger"):
            tally.problems.append(f"{path.name}: left in {folder or 'the queue'}")
    for name, code in expected.items():
        if starts[name] > 1:
            tally.run_twice += 1
            tally.problems.append(f"{name}: its agent ran {starts[name]} times")
        if name not in archived:
            tally.problems.append(f"{name}: never archived")
            continue
        tally.archived_once += 1
        result = project.result(name)
        if result["outcome"] == "lost":
            tally.lost += 1
            tally.problems.append(f"{name}: lost ({result['reason']})")
        elif str(result.get("reason")).startswith(UNKNOWN):
            tally.unknown += 1
            tally.problems.append(f"{name}: {result['reason']}")
        elif result["exit_code"] != code or archived[name] != ("done" if code == 0 else "failed"):
            tally.wrong_outcomes += 1
            tally.problems.append(f"{name}: exit {result['exit_code']} in {archived[name]}, "
                                  f"its agent exited {code}")
    return tally
