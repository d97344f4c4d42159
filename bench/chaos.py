"""The long chaos run: thousands of triggers, the daemon and the keeper SIGKILLed at random
moments, then what became of every trigger.

    python3 bench/chaos.py [--triggers 10000] [--daemon-kills 50] [--keeper-kills 50] [--seed N]

The driver is the one of ``tests/test_chaos.py`` (``tests/chaos_run.py``, with the tests' agent
``tests/agent.py``): triggers for 8 agents with random exit statuses and sleeps (up to 0.15 s; a
third write 20 kB), 8 runs at once, the oldest run held until the end so that every restart
adopts it; each kill comes once a random number of triggers (in the first half) are archived,
a killed daemon is restarted at once and a killed keeper replaced at the next run. Prints one
markdown table: triggers, kills, archived exactly once, lost, unknown ("unknown: may have
run"), run twice, wrong outcomes and the wall time; then each trigger that went wrong. Exits 1
when any did. Runs in a temporary project it removes (``--keep`` keeps it). Needs the package
and its test dependencies installed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chaos_run import ChaosTally, run_chaos
from conftest import Project, processes_of, project_cgroup, remove_empty_cgroups

SHOWN_PROBLEMS = 50


def table(tally: ChaosTally, seed: int) -> str:
    rows = [("triggers", f"{tally.triggers:,}"),
            ("kills", f"{tally.daemon_kills + tally.keeper_kills} ({tally.daemon_kills} daemon, "
                      f"{tally.keeper_kills} keeper)"),
            ("archived exactly once", f"{tally.archived_once:,}"),
            ("lost", str(tally.lost)),
            ("unknown: may have run", str(tally.unknown)),
            ("run twice", str(tally.run_twice)),
            ("wrong outcomes", str(tally.wrong_outcomes)),
            ("time", f"{tally.seconds:,.0f} s"),
            ("seed", str(seed))]
    width = max(len(label) for label, _ in rows)
    lines = [f"| {'':{width}} | value |", f"| {'-' * width} | ----- |"]
    lines += [f"| {label:{width}} | {value} |" for label, value in rows]
    return "\n".join(lines)


def cleanup(project: Project) -> None:
    """Stop the daemon and anything of the project still alive (as the tests' fixture does)."""
    if project.paths.pid_file.exists():
        project.cli("daemon", "stop", check=False, timeout=300)
    _, leftovers = psutil.wait_procs(processes_of(project.root), timeout=3)
    for process in leftovers:
        process.kill()
    psutil.wait_procs(leftovers, timeout=5)
    left = project_cgroup(project.root)
    if left is not None:
        remove_empty_cgroups(left)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--daemon-kills", type=int, default=50)
    parser.add_argument("--keeper-kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--keep", action="store_true", help="keep the project folder")
    args = parser.parse_args()
    kills = ["daemon"] * args.daemon_kills + ["keeper"] * args.keeper_kills
    random.Random(args.seed).shuffle(kills)
    base = Path(tempfile.mkdtemp(prefix="sf-chaos-", dir="/tmp"))
    project = Project(base / "project")
    (project.root / ".claude").mkdir(parents=True)
    try:
        tally = run_chaos(project, args.seed, kills, args.triggers,
                          settle_timeout=max(60.0, args.triggers * 0.15))
    finally:
        cleanup(project)
        if args.keep:
            print(f"project kept in {project.root}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(table(tally, args.seed))
    for problem in tally.problems[:SHOWN_PROBLEMS]:
        print(f"- {problem}")
    if len(tally.problems) > SHOWN_PROBLEMS:
        print(f"- ... and {len(tally.problems) - SHOWN_PROBLEMS} more")
    return 0 if tally.clean else 1


if __name__ == "__main__":
    sys.exit(main())
