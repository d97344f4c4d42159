"""How long the CLI takes to start, against a bare Python measured in the same run.

    python3 bench/cli_startup.py [--rounds N]

Times ``python3 -c pass`` (the baseline), ``starforge --help``, ``starforge trigger AGENT`` (in
a temporary project) and ``starforge daemon status`` (in a project without a daemon, and in one
with a daemon running), each as a whole process: ``time.perf_counter`` around
``subprocess.run``, so fork, exec, imports and exit are all in the figure. The commands take
turns, in a new random order every round, so a busy moment costs every command alike. Prints
one markdown table: median and p90 in ms, the median's difference from the baseline's, and the
target for that difference. Needs the package installed (its ``starforge`` entry point next
to this Python, or on PATH); installs nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError, Project, daemon_environment, running
from results import machine
from sampling import percentile

HERE = Path(__file__).resolve().parent
ROUNDS = 30
WARMUP_ROUNDS = 3
RUN_TIMEOUT = 60.0


@dataclass
class Command:
    label: str
    argv: list[str]
    cwd: Path
    exit_codes: tuple[int, ...] = (0,)
    target_ms: float | None = None  # the most the median may exceed the baseline's median by
    samples_ms: list[float] = field(default_factory=list)

    def time_once(self) -> float:
        started = time.perf_counter()
        result = subprocess.run(self.argv, cwd=self.cwd, env=daemon_environment(),
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT, check=False)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if result.returncode not in self.exit_codes:
            said = (result.stderr or result.stdout).strip()
            raise BenchError(f"{self.label} exited {result.returncode}: {said}")
        return elapsed_ms

    def median(self) -> float:
        return percentile(self.samples_ms, 0.5)


def starforge_program() -> str:
    """The installed entry point beside this Python (no PATH shim in between), else PATH's."""
    beside = Path(sys.executable).with_name("starforge")
    found = str(beside) if beside.is_file() else shutil.which("starforge")
    if found is None:
        sys.exit("bench: no `starforge` program; install the package first (pip install -e .)")
    return found


def measure(commands: Sequence[Command], rounds: int) -> None:
    order = list(commands)
    shuffler = random.Random(0)
    for round_number in range(WARMUP_ROUNDS + rounds):
        shuffler.shuffle(order)
        for command in order:
            elapsed_ms = command.time_once()
            if round_number >= WARMUP_ROUNDS:
                command.samples_ms.append(elapsed_ms)


def table(commands: Sequence[Command], caption: str) -> str:
    baseline = commands[0].median()
    lines = [caption, "",
             "| command | median | p90 | median - baseline | target | result |",
             "|---|---|---|---|---|---|"]
    for command in commands:
        extra = command.median() - baseline
        if command.target_ms is None:
            target = result = ""
        else:
            target = f"≤ +{command.target_ms:.0f} ms"
            result = "PASS" if extra <= command.target_ms else "**FAIL**"
        lines.append(f"| {command.label} | {command.median():.1f} ms "
                     f"| {percentile(command.samples_ms, 0.9):.1f} ms "
                     f"| {'' if command is commands[0] else f'{extra:+.1f} ms'} "
                     f"| {target} | {result} |")
    return "\n".join(lines)


def caption(rounds: int, program: str, load_before: float) -> str:
    box = machine(HERE.parent)
    return (f"CLI start-up, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {rounds} "
            f"rounds after {WARMUP_ROUNDS} warm-up rounds, the commands in a new random order "
            f"each round, each timed with time.perf_counter around subprocess.run (output "
            f"captured; the package's bytecode compiled first). "
            f"`python3` is {sys.executable}, `starforge` is {program}. "
            f"{box['cpus_usable']} CPUs, Linux {box['kernel']}, Python {box['python']}, "
            f"revision {box['revision']}; load average {load_before:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after.")


def compile_package() -> None:
    """Write the package's bytecode first, as ``pip install .`` does: an editable install is
    never compiled, and with PYTHONDONTWRITEBYTECODE set (as on some machines) every start
    would compile every module again, which no installed user pays."""
    import compileall

    import starforge_daemon

    compileall.compile_dir(str(Path(starforge_daemon.__file__).parent), quiet=1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"timed runs of each command (default {ROUNDS})")
    args = parser.parse_args(argv)
    program = starforge_program()
    compile_package()
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="starforge-cli-startup-"))
    try:
        queue_only = Project.create(workdir, "trigger", {})
        idle = Project.create(workdir, "status-idle", {})
        busy = Project.create(workdir, "status-running", {"AGENT_COMMAND": "true"})
        commands = [
            Command("`python3 -c pass` (baseline)", [sys.executable, "-c", "pass"], workdir),
            Command("`starforge --help`", [program, "--help"], workdir, target_ms=40),
            Command("`starforge trigger junior-dev-a`", [program, "trigger", "junior-dev-a"],
                    queue_only.root, target_ms=80),
            Command("`starforge daemon status`, no daemon", [program, "daemon", "status"],
                    idle.root, exit_codes=(3,), target_ms=80),
            Command("`starforge daemon status`, daemon running", [program, "daemon", "status"],
                    busy.root, target_ms=80),
        ]
        with running(busy):
            measure(commands, args.rounds)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(commands, caption(args.rounds, program, load_before)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
