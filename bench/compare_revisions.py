"""Compare this checkout with earlier revisions on the same scenarios, in the same run.

    python3 bench/compare_revisions.py [--base REV[,REV...]] [--rounds N] [--only SCENARIO[,...]]
                                       [--quick]

Each earlier revision is checked out into a temporary git worktree and benchmarked with its own
``bench/run.py`` and its own package (``PYTHONPATH``); the sides alternate, in one order in
even rounds and the other in odd ones (base, this, this, base...), so that a drift of the
machine's load, and whatever the run before leaves behind, hits all of them. Prints,
per figure, the median of each side (each run in brackets) and the ratio of this checkout to
each base, as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
HEAD = "this checkout"
DEFAULT_BASE = "c66a1e4"  # main before the package was reshaped into layers
FIGURES = {  # scenario -> the metrics compared (as bench/run.py names them)
    "parallel-backlog": ("triggers: ready to all archived", "daemon CPU per trigger",
                         "keeper CPU per trigger"),
    "sequential-backlog": ("overhead per trigger", "daemon CPU per trigger",
                           "keeper CPU per trigger"),
    "live-latency": ("rename to first instruction, p50", "rename to first instruction, p99",
                     "noticed), p50", "QUEUE event to first instruction, p50"),
    "many-at-once": ("exit to reap (FINISH logged), p99", "exit to reap, p50", "exit to reap, max"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="the earlier revisions, by commas")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side")
    parser.add_argument("--only", default=",".join(FIGURES), help="scenarios to compare")
    parser.add_argument("--quick", action="store_true", help="bench/run.py --quick sizes")
    parser.add_argument("--workdir", default="/dev/shm",
                        help="where the projects go (default: /dev/shm, a tmpfs: the disk's "
                             "noise in file creation is left out)")
    return parser.parse_args(argv)


def _figures(report: Path, scenarios: list[str]) -> dict[tuple[str, str], float]:
    """The compared figures out of one bench/run.py JSON report, by (scenario, metric)."""
    data = json.loads(report.read_text())
    found = {}
    for result in data["scenarios"]:
        if result["name"] not in scenarios:
            continue
        for row in result["rows"]:
            for metric in FIGURES[result["name"]]:
                if metric in row["metric"] and row["value"] is not None:
                    found[(result["name"], metric)] = row["value"]
    return found


def _bench(tree: Path, args: argparse.Namespace, scenarios: list[str], report: Path,
           ) -> dict[tuple[str, str], float]:
    command = [sys.executable, str(tree / "bench" / "run.py"), "--only", ",".join(scenarios),
               "--json", str(report), "--workdir", args.workdir]
    command += ["--quick"] if args.quick else []
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(command, cwd=tree, env=environment, check=True, stdout=subprocess.DEVNULL)
    return _figures(report, scenarios)


def _ratio_cell(base: float, head: float) -> str:
    return f"{head / base:.2f}x" if base else "-"


@contextmanager
def revision_trees(bases: list[str]) -> Iterator[dict[str, Path]]:
    """Each revision checked out into a temporary git worktree, then this checkout; by name."""
    with tempfile.TemporaryDirectory(prefix="starforge-compare-") as scratch:
        trees = {revision: Path(scratch) / revision for revision in bases}
        try:
            for revision, tree in trees.items():
                subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "add", "--detach",
                                "--quiet", str(tree), revision], check=True)
            yield {**trees, HEAD: CHECKOUT}
        finally:
            for tree in trees.values():
                if tree.exists():
                    subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "remove", "--force",
                                    str(tree)], check=False)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    scenarios = [name.strip() for name in args.only.split(",") if name.strip() in FIGURES]
    bases = [revision.strip() for revision in args.base.split(",") if revision.strip()]
    with revision_trees(bases) as sides, tempfile.TemporaryDirectory() as reports:
        samples: dict[str, dict[tuple[str, str], list[float]]] = {side: {} for side in sides}
        for number in range(args.rounds):
            order = list(sides.items())
            for side, tree in order if number % 2 == 0 else reversed(order):
                print(f"compare: round {number + 1}/{args.rounds}, {side}", file=sys.stderr,
                      flush=True)
                report = Path(reports) / f"{tree.name}-{number}.json"
                for key, value in _bench(tree, args, scenarios, report).items():
                    samples[side].setdefault(key, []).append(value)
    print(_table(samples, bases, args.rounds))
    return 0


def _table(samples: dict[str, dict[tuple[str, str], list[float]]], bases: list[str],
           rounds: int) -> str:
    columns = [*bases, HEAD]
    lines = ["| scenario | metric | " + " | ".join(columns) + " | "
             + " | ".join(f"ratio to {base}" for base in bases) + " |",
             "|---|---|" + "---|" * (len(columns) + len(bases)),
             ]
    keys = set.intersection(*(set(samples[side]) for side in columns))
    for key in sorted(keys):
        medians = {side: statistics.median(samples[side][key]) for side in columns}
        cells = [f"{medians[side]:.2f} ({' / '.join(f'{v:.2f}' for v in samples[side][key])})"
                 for side in columns]
        ratios = [_ratio_cell(medians[base], medians[HEAD]) for base in bases]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells + ratios) + " |")
    return "\n".join([f"medians of {rounds} alternating runs (each run in brackets)", "", *lines])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
