"""Live latency of this checkout against earlier revisions, measured in pairs.

    python3 bench/paired_latency.py [--base REV[,REV...]] [--count N] [--workdir DIR]

The live latency scenario of ``bench/run.py`` moves by 0.2 to 0.4 ms between two runs of the
same code on this machine, more than most changes to the path it measures. Here one daemon of
each revision (its package from a temporary git worktree, as ``compare_revisions.py`` does)
runs at the same time, each in its project, and the triggers go to them in turn: in each round
one trigger to every daemon and one direct spawn (the baseline), in a random order, each 20 to
80 ms after the last, as in ``bench/run.py``. Every daemon meets the same moments of the
machine, so the difference of round N's two latencies is a paired sample. Prints each side's
p50, p90 and mean, the direct spawn's p50, and per base the median of the paired differences
and the rounds this checkout was faster in.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import baselines
from compare_revisions import HEAD, revision_trees
from harness import HistoryFile, Project, drop_trigger, printed_time, running
from scenarios import DATE, DROP_SPACING, SETTLE_SECONDS

DIRECT = "direct spawn"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the earlier revisions, by commas")
    parser.add_argument("--count", type=int, default=300, help="rounds (triggers per daemon)")
    parser.add_argument("--workdir", default="/dev/shm", help="where the projects go")
    return parser.parse_args(argv)


def _latencies(trees: dict[str, Path], count: int, workdir: Path) -> dict[str, list[float]]:
    """Milliseconds from rename to the agent's first instruction, per side, by round."""
    spacing = random.Random(7)
    with ExitStack() as stack:
        projects = {}
        for side, tree in trees.items():
            project = Project.create(workdir, "paired", {"AGENT_COMMAND": DATE})
            project.package_tree = tree
            stack.callback(project.remove)
            stack.enter_context(running(project))
            projects[side] = (project, HistoryFile(project.paths))
        time.sleep(SETTLE_SECONDS)
        dropped: dict[str, list[float]] = {side: [] for side in trees}
        samples: dict[str, list[float]] = {DIRECT: []}
        for index in range(count):
            for side in spacing.sample([*trees, DIRECT], len(trees) + 1):
                if side == DIRECT:
                    samples[DIRECT].append(1000 * baselines.direct_start_latency(DATE.split()))
                else:
                    project, history = projects[side]
                    dropped[side].append(drop_trigger(project.paths.triggers,
                                                      f"live{index:05d}.trigger", "live"))
                    history.wait_for(index + 1, interval=0.002)
                time.sleep(spacing.uniform(*DROP_SPACING))
        for side, (_, history) in projects.items():
            started = {record.trigger: printed_time(record.log) for record in history.records()}
            samples[side] = [1000 * (started[f"live{index:05d}.trigger"] - at)
                             for index, at in enumerate(dropped[side])]
    return samples


def _table(samples: dict[str, list[float]], bases: list[str]) -> str:
    lines = ["| side | p50 ms | p90 ms | mean ms |", "|---|---|---|---|"]
    for side, values in samples.items():
        ordered = sorted(values)
        lines.append(f"| {side} | {statistics.median(ordered):.3f} | "
                     f"{ordered[int(0.9 * len(ordered))]:.3f} | {statistics.mean(ordered):.3f} |")
    lines += ["", f"| {HEAD} against | median of paired differences, ms | {HEAD} faster in |",
              "|---|---|---|"]
    for base in bases:
        differences = [head - earlier for head, earlier in zip(samples[HEAD], samples[base], strict=True)]
        faster = sum(difference < 0 for difference in differences)
        lines.append(f"| {base} | {statistics.median(differences):+.3f} | "
                     f"{faster} of {len(differences)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bases = [revision.strip() for revision in args.base.split(",") if revision.strip()]
    with revision_trees(bases) as trees:
        samples = _latencies(trees, args.count, Path(args.workdir))
    print(f"{args.count} rounds; each: one trigger per daemon and one direct spawn, shuffled\n")
    print(_table(samples, bases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
