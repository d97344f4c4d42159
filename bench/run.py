"""Benchmark the real daemon against baselines measured in the same invocation.

    python3 bench/run.py [--only SCENARIO[,...]] [--quick] [--json PATH]

Each scenario starts ``starforge daemon start`` in a temporary project, so the package must be
installed (``pip install -e .``); nothing is installed or downloaded here. The daemon and its
keeper run on the interpreter that runs this script: run it with a venv's ``python`` to measure
that interpreter. Prints one markdown table and writes the same figures, with the machine's
description, as JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from cli_startup import compile_package
from harness import BenchError
from results import ScenarioResult, machine, markdown, write_json
from sampling import MachineLoad
from scenarios import FULL, QUICK, SCENARIOS, Context
from slurm_scenarios import SLURM_SCENARIOS

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
NEEDED_TOOLS = ("sh", "true", "date", "xargs")


def _scenario_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS and name not in SLURM_SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)}; "
            f"on a Slurm cluster, asked for by name: {', '.join(SLURM_SCENARIOS)})")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=_scenario_names, default=list(SCENARIOS),
                        metavar="SCENARIO[,...]", help=f"run only these: {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true",
                        help="smaller counts and a 5 s idle: a smoke run of about a minute")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write the figures (default: bench/results/latest.json)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary projects go (default: the system temp folder)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary projects for inspection")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles (raw format) of the daemon and the keeper "
                             "during the backlogs into DIR; the figures are then not comparable")
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> None:
    missing = [tool for tool in NEEDED_TOOLS if shutil.which(tool) is None]
    if args.profile is not None and shutil.which("py-spy") is None:
        missing.append("py-spy (for --profile)")
    if missing:
        sys.exit(f"bench: missing on PATH: {', '.join(missing)}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)


def run_scenario(name: str, ctx: Context) -> ScenarioResult:
    title, scenario = {**SCENARIOS, **SLURM_SCENARIOS}[name]
    result = ScenarioResult(name, title)
    started = time.monotonic()
    print(f"bench: {title} ...", file=sys.stderr, flush=True)
    load = MachineLoad(ctx.workdir)
    try:
        scenario(ctx, result)
    except (BenchError, OSError, subprocess.SubprocessError, psutil.Error) as error:
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = time.monotonic() - started
    machine_load = load.summary()
    result.details["machine"] = machine_load
    result.notes.append("machine: load average {load_average_before:.2f} -> "
                        "{load_average_after:.2f}, CPUs {cpus_busy_percent:.0f} % busy (the "
                        "daemon's work included); creating a file in the workdir took "
                        "{file_create_us_before:.0f} -> {file_create_us_after:.0f} µs"
                        .format(**machine_load))
    outcome = f"error: {result.error}" if result.error else "done"
    print(f"bench: {title}: {outcome} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)
    return result


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    preflight(args)
    compile_package()  # the daemon's memory and start as an installed user has them
    sizes = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="starforge-bench-", dir=args.workdir))
    ctx = Context(workdir=workdir, sizes=sizes, keep=args.keep, profile=args.profile)
    run = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": machine(HERE.parent), "quick": args.quick, "sizes": asdict(sizes),
           "profiled": args.profile is not None, "load_average_before": os.getloadavg()}
    try:
        results = [run_scenario(name, ctx) for name in [*SCENARIOS, *SLURM_SCENARIOS]
                   if name in args.only]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    run["load_average_after"] = os.getloadavg()
    write_json(args.json, run, results)
    print(_heading(run))
    print(markdown(results))
    print(f"\n(figures also in {args.json})")
    return 1 if any(result.error for result in results) else 0


def _heading(run: dict[str, Any]) -> str:
    box = run["machine"]
    before, after = run["load_average_before"][0], run["load_average_after"][0]
    text = (f"starforge bench, {run['started_at']}: {box['cpus_usable']} CPUs, Linux "
            f"{box['kernel']}, Python {box['python']} ({box['python_executable']}, "
            f"{'shared' if box['libpython_shared'] else 'linked-in'} libpython), revision "
            f"{box['revision']}; "
            f"load average {before:.2f} before, {after:.2f} after")
    if run["quick"]:
        text += "\n\n--quick: reduced counts; the targets are written for the full sizes"
    if run["profiled"]:
        text += "\n\n--profile: py-spy was attached, so the figures are not comparable"
    return text + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
