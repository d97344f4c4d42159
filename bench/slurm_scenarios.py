"""Dispatch latency, and a backlog drained, with ``RUNNER=slurm`` against ``sbatch`` called
directly in the same run, on the cluster this machine's ``sbatch`` reaches (``SLURM_CONF``;
``bash .ci/slurm up DIR`` makes a one-node one). Opt-in:
``python3 bench/run.py --only slurm-latency,slurm-drain``.

Latency: both sides time a rename (or a submit) to the first instruction of a ``date`` job, one
at a time, each once the one before has ended; the controller's scheduling tick dominates both.
Also how soon a run's end is seen: its one instruction to its FINISH event.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness import (
    BenchError,
    HistoryFile,
    check_succeeded,
    printed_time,
    read_events,
    running,
    write_triggers,
)
from results import ScenarioResult, at_most, info, ratio_at_most
from sampling import CpuWindow, spread
from scenarios import DATE, DROP_SPACING, Context, _drop_one_by_one, fresh_project

SAMPLES = {True: 20, False: 60}  # by --quick: each takes about one scheduling tick
WAIT_TIMEOUT = 60.0
DRAIN_COUNT, DRAIN_AGENTS, DRAIN_SLEEP = 200, 50, 2.0


def _require_cluster() -> None:
    done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if " is UP" not in done.stdout:
        raise BenchError("no Slurm controller answers (scontrol ping); start one with "
                         "`bash .ci/slurm up DIR` and export SLURM_CONF=DIR/slurm.conf")


def _sbatch_direct_ms(folder: Path, count: int, spacing: random.Random) -> list[float]:
    """``sbatch`` of a ``date`` job, one at a time: submit to the moment it printed."""
    samples = []
    for index in range(count):
        output = folder / f"direct-{index}.out"
        submitted = time.time()
        subprocess.run(["sbatch", "--quiet", "--no-requeue", f"--output={output}",
                        f"--chdir={folder}", "--wrap", DATE], check=True)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not (output.exists() and output.read_text().strip()):
            if time.monotonic() > deadline:
                raise BenchError(f"the direct job {index} did not print within {WAIT_TIMEOUT:g} s")
            time.sleep(0.002)
        samples.append(1000 * (printed_time(str(output)) - submitted))
        time.sleep(spacing.uniform(*DROP_SPACING))
    return samples


def slurm_latency(ctx: Context, result: ScenarioResult) -> None:
    _require_cluster()
    count = SAMPLES[ctx.sizes.latency < 100]
    spacing = random.Random(7)
    with fresh_project(ctx, result, "slurm-latency",
                       {"AGENT_COMMAND": DATE, "RUNNER": "slurm"}) as project:
        with running(project):
            dropped = _drop_one_by_one(project, count, spacing)
        records = HistoryFile(project.paths).records()
        check_succeeded(records)
        started = {record.trigger: printed_time(record.log) for record in records}
        finished = {event.field("trigger"): event.at for event in
                    read_events(project.paths.daemon_log, frozenset({"FINISH"}))}
        direct = spread(_sbatch_direct_ms(project.root, count, spacing))
    daemon = spread([1000 * (started[name] - dropped[name]) for name in started])
    reaped = spread([1000 * (finished[name] - started[name]) for name in started])
    result.details.update(daemon_ms=daemon, sbatch_direct_ms=direct, instruction_to_finish_ms=reaped)
    label = "sbatch directly"
    result.rows += [
        ratio_at_most(f"rename to first instruction, p50 (n={len(started)})", daemon["p50"],
                      "ms", direct["p50"], label, 1.2),
        info("rename to first instruction, p99", daemon["p99"], "ms", direct["p99"], label),
        info("rename to first instruction, max", daemon["max"], "ms", direct["max"], label),
        info("the agent's one instruction to its FINISH event, p50", reaped["p50"], "ms"),
        at_most("the agent's one instruction to its FINISH event, p99", reaped["p99"], "ms",
                2000.0),
    ]


def _sbatch_backlog_s(folder: Path, agents: tuple[str, ...], count: int, seconds: float) -> float:
    """The same backlog submitted with ``sbatch`` directly, one singleton name per agent as the
    daemon's jobs have: submit to the last job's end, in seconds."""
    started = time.monotonic()
    for index in range(count):
        subprocess.run(["sbatch", "--quiet", "--no-requeue", "--dependency=singleton",
                        f"--job-name=bench-direct-{folder.name}.{agents[index % len(agents)]}",
                        f"--chdir={folder}", "--output=/dev/null", "--wrap", f"sleep {seconds:g}"],
                       check=True)
    mine = f"bench-direct-{folder.name}."
    deadline = time.monotonic() + WAIT_TIMEOUT * 10
    while True:
        listed = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True,
                                check=True).stdout.split()
        if not any(name.startswith(mine) for name in listed):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise BenchError("the direct backlog did not end in time")
        time.sleep(0.05)


def slurm_drain(ctx: Context, result: ScenarioResult) -> None:
    """200 triggers over 50 agents, each a ``sleep`` job, drained with ``RUNNER=slurm`` and the
    daemon's CPU meanwhile; the same 200 jobs through ``sbatch`` directly."""
    _require_cluster()
    agents = tuple(f"agent-{number:02d}" for number in range(DRAIN_AGENTS))
    with fresh_project(ctx, result, "slurm-drain",
                       {"AGENT_COMMAND": f"sleep {DRAIN_SLEEP:g}", "RUNNER": "slurm",
                        "PARALLEL_DAEMON": "true"}) as project:
        write_triggers(project.paths.triggers, agents, DRAIN_COUNT)
        history = HistoryFile(project.paths)
        with running(project) as daemon:
            window = CpuWindow({"daemon": daemon.process})
            window.open()
            history.wait_for(DRAIN_COUNT)
            cpu = window.close()
            drained = time.time() - daemon.ready_at
        check_succeeded(history.records())
        direct = _sbatch_backlog_s(project.root, agents, DRAIN_COUNT, DRAIN_SLEEP)
    result.details.update(drain_s=drained, sbatch_direct_s=direct, cpu_percent_of_core=cpu)
    result.rows += [
        info(f"{DRAIN_COUNT} triggers over {DRAIN_AGENTS} agents ({DRAIN_SLEEP:g} s jobs), "
             "ready to drained", drained, "s", direct, "sbatch directly"),
        info(f"daemon CPU while up to {DRAIN_AGENTS} jobs run", cpu["daemon"], "%"),
    ]


SLURM_SCENARIOS: dict[str, tuple[str, Callable[[Context, ScenarioResult], None]]] = {
    "slurm-latency": ("dispatch latency, RUNNER=slurm", slurm_latency),
    "slurm-drain": ("a backlog drained, RUNNER=slurm", slurm_drain),
}
