"""Where the time went, from the raw py-spy profiles that ``run.py --profile DIR`` writes.

    python3 bench/profile_summary.py DIR/parallel-daemon.txt [--top 15] [--within Engine.step] [--lines]

A raw profile has one line per distinct stack, ``frame;frame;...;leaf COUNT``, each frame
``function (file:line)``. Frames are summed per function (the line dropped): *self* counts the
samples where the function was the leaf, *inclusive* those where it was anywhere on the stack.
``--within`` keeps only the stacks through a function, e.g. the daemon's loop (``Engine.step``)
without its helper threads, which py-spy samples while they wait too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

_LINE_NUMBER = re.compile(r":\d+\)$")


def function_of(frame: str) -> str:
    """``Archive.put (starforge_daemon/records.py:59)`` -> ``Archive.put (starforge_daemon/records.py)``."""
    return _LINE_NUMBER.sub(")", frame.strip())


def read_stacks(lines: Iterable[str], by_line: bool = False) -> Iterator[tuple[list[str], int]]:
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            yield (frames if by_line else [function_of(frame) for frame in frames]), int(count)


def within(stacks: Iterable[tuple[list[str], int]], name: str
           ) -> Iterator[tuple[list[str], int]]:
    """Only the stacks with a frame of a function whose name contains ``name``."""
    return ((frames, count) for frames, count in stacks
            if any(name in function for function in frames))


def tally(stacks: Iterable[tuple[list[str], int]]) -> tuple[Counter[str], Counter[str], int]:
    """Self and inclusive samples per function, and the total number of samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for function in set(frames):
            inclusive[function] += count
    return own, inclusive, total


def table(title: str, counts: Counter[str], total: int, top: int) -> str:
    lines = [f"| {title} | samples | share |", "|---|---|---|"]
    lines += [f"| `{function}` | {count} | {100 * count / total:.1f} % |"
              for function, count in counts.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="a raw py-spy profile (-f raw)")
    parser.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    parser.add_argument("--within", metavar="FUNCTION",
                        help="only stacks through a function whose name contains this")
    parser.add_argument("--lines", action="store_true",
                        help="count per source line instead of per function")
    args = parser.parse_args(argv)
    with open(args.profile, encoding="utf-8", errors="replace") as file:
        stacks = read_stacks(file, args.lines)
        own, inclusive, total = tally(within(stacks, args.within) if args.within else stacks)
    if not total:
        sys.exit(f"{args.profile}: no samples")
    scope = f" through {args.within}" if args.within else ""
    print(f"{args.profile}: {total} samples{scope}\n")
    print(table("self (leaf)", own, total, args.top) + "\n")
    print(table("inclusive", inclusive, total, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
