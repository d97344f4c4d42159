"""The scenarios. Each runs the real daemon in a fresh project, measures, runs its baseline in
the same invocation, and fills a :class:`ScenarioResult` with rows, details and notes."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import baselines
from harness import (
    BenchError,
    Daemon,
    HistoryFile,
    Project,
    check_succeeded,
    drop_trigger,
    has_fraction,
    printed_time,
    read_events,
    running,
    wait_for_events,
    write_triggers,
)
from results import Row, ScenarioResult, at_most, info, ratio_at_most
from sampling import CpuWindow, peak_rss_mb, rss_mb, spread

from starforge_daemon.core.models import parse_iso_utc
from starforge_daemon.store.results import ResultRecord

AGENTS = tuple(f"agent-{number:02d}" for number in range(16))
DATE = "date +%s.%N"  # a tiny agent whose one instruction says when it ran
SETTLE_SECONDS = 1.0  # let a fresh daemon finish its start before an idle measurement
DROP_SPACING = (0.02, 0.08)  # seconds between live triggers, drawn at random
FIRST_RUNS = 64  # the first run to start is among the first this many to finish


@dataclass(frozen=True)
class Sizes:
    parallel: int
    sequential: int
    latency: int
    turnaround: int
    scaling: tuple[int, ...]
    many: int
    many_sleep: float
    idle_seconds: float
    dependencies: int
    backlog_memory: int  # queued at start, for the daemon's peak memory
    memory_runs: int  # runs fed a batch at a time, for memory against runs behind it
    memory_batch: int


FULL = Sizes(parallel=5000, sequential=1000, latency=200, turnaround=200,
             scaling=(100, 1000, 10_000, 50_000), many=1000, many_sleep=10.0, idle_seconds=60.0,
             dependencies=10_000, backlog_memory=100_000, memory_runs=100_000, memory_batch=1000)
QUICK = Sizes(parallel=500, sequential=200, latency=20, turnaround=30, scaling=(100, 1000, 2000),
              many=100, many_sleep=5.0, idle_seconds=5.0, dependencies=1000,
              backlog_memory=10_000, memory_runs=5000, memory_batch=1000)


@dataclass(frozen=True)
class Context:
    workdir: Path
    sizes: Sizes
    keep: bool = False
    profile: Path | None = None  # write py-spy profiles of the daemon and keeper here


@contextmanager
def fresh_project(ctx: Context, result: ScenarioResult, name: str,
                  settings: dict[str, str]) -> Iterator[Project]:
    project = Project.create(ctx.workdir, name, settings)
    try:
        yield project
    finally:
        result.notes.extend(project.notes)
        if ctx.keep:
            result.notes.append(f"project kept in {project.root}")
        else:
            project.remove()


@contextmanager
def profiled(ctx: Context, label: str, daemon: Daemon) -> Iterator[None]:
    """py-spy on the daemon and the keeper while the block runs (``--profile`` only)."""
    recorders = []
    if ctx.profile is not None:
        for role, process in daemon.processes().items():
            output = ctx.profile / f"{label}-{role}.txt"
            recorders.append(subprocess.Popen(
                ["py-spy", "record", "-p", str(process.pid), "-f", "raw", "-r", "200",
                 "-o", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            recorder.wait(timeout=60)


# -- draining a backlog ----------------------------------------------------------------------

@dataclass(frozen=True)
class Drain:
    """One backlog drained by a daemon, in wall-clock seconds."""

    count: int
    invoked_at: float
    ready_at: float
    finished_at: float
    first_start: float | None  # only known with the ``date`` agent
    cpu: dict[str, float]  # % of a core from ready to the end
    rss_at_ready: dict[str, float]

    @property
    def from_ready(self) -> float:
        return self.finished_at - self.ready_at

    @property
    def from_invocation(self) -> float:
        return self.finished_at - self.invoked_at

    def cpu_ms_per_trigger(self, role: str) -> float:
        return 10.0 * self.cpu[role] * self.cpu["seconds"] / self.count

    def details(self) -> dict[str, Any]:
        return {"count": self.count, "from_ready_s": self.from_ready,
                "from_invocation_s": self.from_invocation,
                "start_to_ready_s": self.ready_at - self.invoked_at,
                "first_dispatch_s": (self.first_start - self.invoked_at
                                     if self.first_start is not None else None),
                "cpu_percent_of_core": self.cpu, "rss_mb_at_ready": self.rss_at_ready}


def drain(ctx: Context, result: ScenarioResult, label: str, settings: dict[str, str],
          count: int, edges: bool = False) -> Drain:
    """Queue ``count`` triggers over 16 agents (``edges``: every other one after the one
    before), start a daemon, wait until all are archived.

    The end is the last FINISH event's time in the daemon log, not when the bench noticed.
    """
    with fresh_project(ctx, result, label, settings) as project:
        write_triggers(project.paths.triggers, AGENTS, count, edges)
        history = HistoryFile(project.paths)
        with running(project) as daemon:
            rss = {role: rss_mb(process) for role, process in daemon.processes().items()}
            window = CpuWindow(daemon.processes())
            window.open()
            with profiled(ctx, label, daemon):
                history.wait_for(count)
            cpu = window.close()
        records = history.records()
        check_succeeded(records)
        finished = read_events(project.paths.daemon_log, frozenset({"FINISH"}))
        first_start = None
        if settings["AGENT_COMMAND"] == DATE:
            first_start = min(printed_time(record.log) for record in records[:FIRST_RUNS])
        return Drain(count, daemon.invoked_at, daemon.ready_at, max(e.at for e in finished),
                     first_start, cpu, rss)


def _cpu_rows(run: Drain) -> list[Row]:
    return [info(f"{role} CPU per trigger ({run.cpu[role]:.0f} % of a core)",
                 run.cpu_ms_per_trigger(role), "ms")
            for role in ("daemon", "keeper") if role in run.cpu]


def _baseline_twice(measure: Callable[[], float], around: Callable[[], Drain]
                    ) -> tuple[Drain, float, list[float]]:
    """The baseline just before and just after the daemon's run; their mean evens out drift."""
    before = measure()
    run = around()
    after = measure()
    return run, (before + after) / 2, [before, after]


def _task_spooler(ctx: Context, result: ScenarioResult, count: int, slots: int
                  ) -> float | None:
    """Seconds task-spooler took for the same jobs, its output files in the same workdir as
    the daemon's files; None where it is not installed."""
    client = baselines.task_spooler()
    if client is None:
        result.notes.append("task-spooler (tsp) not installed: its rows were skipped")
        return None
    spooled = baselines.task_spooler_drain(client, count, slots, ctx.workdir)
    result.details["task_spooler"] = spooled
    result.notes.append("task-spooler cannot hold a backlog (at most 1,000 waiting clients): "
                        "its figure is submitting every job plus the drain overlapping it "
                        f"(submit {spooled['submit_s']:.2f} s)")
    return spooled["total_s"]


# -- the scenarios ---------------------------------------------------------------------------

def parallel_backlog(ctx: Context, result: ScenarioResult) -> None:
    count = ctx.sizes.parallel
    settings = {"AGENT_COMMAND": "true", "PARALLEL_DAEMON": "true", "MAX_CONCURRENT_AGENTS": "16"}
    run, xargs, samples = _baseline_twice(
        lambda: baselines.xargs_parallel(count, 16),
        lambda: drain(ctx, result, "parallel", settings, count))
    result.details.update(daemon=run.details(), xargs_s=samples)
    label = "xargs -P 16"
    spooled = _task_spooler(ctx, result, count, 16)
    result.rows += [
        ratio_at_most(f"{count:,} triggers: ready to all archived", run.from_ready, "s", xargs,
                      label, 1.5),
        info("same, from `daemon start`", run.from_invocation, "s", xargs, label),
        *_cpu_rows(run),
        info(f"task-spooler -S 16: submit + drain {count:,}", spooled, "s", xargs, label),
    ]
    if spooled is not None:
        result.rows.append(ratio_at_most("ready to all archived, against task-spooler",
                                         run.from_ready, "s", spooled, "task-spooler", 1.0))


def sequential_backlog(ctx: Context, result: ScenarioResult) -> None:
    count = ctx.sizes.sequential
    settings = {"AGENT_COMMAND": "true", "PARALLEL_DAEMON": "false"}
    run, loop, samples = _baseline_twice(
        lambda: baselines.shell_loop(count),
        lambda: drain(ctx, result, "sequential", settings, count))
    result.details.update(daemon=run.details(), loop_s=samples)
    overhead_ms = 1000 * (run.from_ready - loop) / count
    spooled = _task_spooler(ctx, result, count, 1)
    spooled_ms = None if spooled is None else 1000 * (spooled - loop) / count
    result.rows += [
        info(f"{count:,} triggers: ready to all archived", run.from_ready, "s", loop, "sh loop"),
        at_most("overhead per trigger: (daemon - loop) / N", overhead_ms, "ms",
                5.0 if spooled_ms is None else spooled_ms, spooled_ms, "task-spooler's"),
        *_cpu_rows(run),
        info(f"task-spooler -S 1: submit + drain {count:,}", spooled, "s", loop, "sh loop"),
        info("task-spooler's overhead per job: (tsp - loop) / N", spooled_ms, "ms"),
    ]


def dependency_backlog(ctx: Context, result: ScenarioResult) -> None:
    """A backlog where every other trigger comes ``after`` the one before it, against the same
    backlog without those edges, drained one after the other in this run."""
    count = ctx.sizes.dependencies
    settings = {"AGENT_COMMAND": "true", "PARALLEL_DAEMON": "true", "MAX_CONCURRENT_AGENTS": "16"}
    plain = drain(ctx, result, "dependencies-none", settings, count)
    linked = drain(ctx, result, "dependencies-edges", settings, count, edges=True)
    result.details.update(without_edges=plain.details(), with_edges=linked.details())
    result.rows += [
        ratio_at_most(f"{count:,} triggers with {count // 2:,} edges: per trigger",
                      1000 * linked.from_ready / count, "ms", 1000 * plain.from_ready / count,
                      "no edges", 1.5),
        *_cpu_rows(linked),
    ]


def _drop_one_by_one(project: Project, count: int, spacing: random.Random) -> dict[str, float]:
    """Rename triggers into the queue of an idle daemon, each once the run before has ended;
    when each rename happened, by trigger name."""
    history = HistoryFile(project.paths)
    dropped = {}
    time.sleep(SETTLE_SECONDS)
    for index in range(count):
        name = f"live{index:05d}.trigger"
        dropped[name] = drop_trigger(project.paths.triggers, name, "live")
        history.wait_for(index + 1, interval=0.002)
        time.sleep(spacing.uniform(*DROP_SPACING))
    return dropped


def _direct_start_ms(count: int, spacing: random.Random) -> list[float]:
    samples = []
    for _ in range(count):
        samples.append(1000 * baselines.direct_start_latency(DATE.split()))
        time.sleep(spacing.uniform(*DROP_SPACING))
    return samples


def live_latency(ctx: Context, result: ScenarioResult) -> None:
    """Triggers dropped one at a time into an idle daemon: rename to the agent's first step,
    split at the QUEUE event (the daemon has read the trigger)."""
    _live_latency(ctx, result, "latency", {"AGENT_COMMAND": DATE})


def live_latency_hung_receiver(ctx: Context, result: ScenarioResult) -> None:
    """The same while every run's notice goes to a receiver that takes the connection and
    never answers: delivery must not slow the dispatch."""
    with socket.socket() as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.listen(64)
        port = receiver.getsockname()[1]
        _live_latency(ctx, result, "latency-hung-receiver",
                      {"AGENT_COMMAND": DATE, "NOTIFY_URLS": f"json://127.0.0.1:{port}/",
                       "NOTIFY_ON": "succeeded"})


def _live_latency(ctx: Context, result: ScenarioResult, name: str,
                  settings: dict[str, str]) -> None:
    spacing = random.Random(7)
    with fresh_project(ctx, result, name, settings) as project:
        with running(project):
            dropped = _drop_one_by_one(project, ctx.sizes.latency, spacing)
        records = HistoryFile(project.paths).records()
        check_succeeded(records)
        started = {record.trigger: printed_time(record.log) for record in records}
        queued: dict[str | None, float] = {}
        for event in read_events(project.paths.daemon_log, frozenset({"QUEUE"})):
            queued.setdefault(event.field("trigger"), event.at)
    daemon = spread([1000 * (started[name] - dropped[name]) for name in started])
    noticed = spread([1000 * (queued[name] - dropped[name]) for name in started])
    dispatched = spread([1000 * (started[name] - queued[name]) for name in started])
    direct = spread(_direct_start_ms(len(started), spacing))
    result.details.update(daemon_ms=daemon, direct_spawn_ms=direct, rename_to_queue_ms=noticed,
                          queue_to_first_instruction_ms=dispatched)
    label = "direct spawn"
    result.rows += [
        at_most(f"rename to first instruction, p50 (n={len(started)})", daemon["p50"], "ms",
                2.5, direct["p50"], label),
        at_most("rename to first instruction, p99", daemon["p99"], "ms", 10.0, direct["p99"],
                label),
        info("rename to first instruction, max", daemon["max"], "ms", direct["max"], label),
        info("of which rename to QUEUE event (noticed), p50", noticed["p50"], "ms"),
        info("of which rename to QUEUE event (noticed), p99", noticed["p99"], "ms"),
        info("of which QUEUE event to first instruction, p50", dispatched["p50"], "ms"),
    ]


def _exit_times(records: list[ResultRecord], result: ScenarioResult) -> list[float]:
    """When each run exited: the history's ``ended_at`` when it has sub-second precision, else
    the agent's own printed time (it printed, then exited: the gap is then slightly larger)."""
    if all(has_fraction(record.ended_at) for record in records):
        result.details["exit_time_source"] = "history ended_at"
        return [parse_iso_utc(record.ended_at) for record in records]
    result.details["exit_time_source"] = "agent's printed time"
    result.notes.append("the history's ended_at has whole seconds only: a run's exit is taken "
                        "as the time its agent printed just before exiting")
    return [printed_time(record.log) for record in records]


def slot_turnaround(ctx: Context, result: ScenarioResult) -> None:
    """One agent name, a queue of its triggers: from one run's exit to the next one's start."""
    count = ctx.sizes.turnaround
    with fresh_project(ctx, result, "turnaround", {"AGENT_COMMAND": DATE}) as project:
        write_triggers(project.paths.triggers, ["solo"], count)
        history = HistoryFile(project.paths)
        with running(project):
            history.wait_for(count)
        records = history.records()
        check_succeeded(records)
        exits = _exit_times(records, result)
        starts = [printed_time(record.log) for record in records]
    gaps_ms = [1000 * (start - exited)
               for exited, start in zip(exits[:-1], starts[1:], strict=True)]
    gaps = spread(gaps_ms)
    result.details["turnaround_ms"] = gaps
    result.rows += [
        at_most(f"exit to next start, p50 (n={len(gaps_ms)})", gaps["p50"], "ms", 5.0),
        info("exit to next start, p99", gaps["p99"], "ms"),
    ]


def backlog_scaling(ctx: Context, result: ScenarioResult) -> None:
    """The parallel backlog at growing sizes: does a trigger cost more when more are queued?"""
    settings = {"AGENT_COMMAND": DATE, "PARALLEL_DAEMON": "true", "MAX_CONCURRENT_AGENTS": "16"}
    runs: dict[int, Drain] = {}
    for count in ctx.sizes.scaling:
        runs[count] = drain(ctx, result, f"scaling-{count}", settings, count)
    result.details["runs"] = {str(count): run.details() for count, run in runs.items()}
    largest = max(runs)
    for count, run in runs.items():
        per_trigger = 1000 * run.from_invocation / count
        first = (run.first_start or float("nan")) - run.invoked_at
        result.rows += [
            info(f"{count:,} queued: per trigger, from `daemon start`", per_trigger, "ms"),
            info(f"{count:,} queued: per trigger, from ready", 1000 * run.from_ready / count,
                 "ms"),
            at_most(f"{count:,} queued: first dispatch", first, "s", 3.0) if count == largest
            else info(f"{count:,} queued: first dispatch", first, "s"),
        ]
    if 1000 in runs and largest > 1000:
        result.rows.append(ratio_at_most(
            f"per trigger at {largest:,} vs at 1,000", 1000 * runs[largest].from_invocation /
            largest, "ms", 1000 * runs[1000].from_invocation / 1000, "at 1,000", 1.5))


def many_at_once(ctx: Context, result: ScenarioResult) -> None:
    """Hundreds of agents asleep at once: what the daemon costs meanwhile, how fast it reaps."""
    count, sleep = ctx.sizes.many, ctx.sizes.many_sleep
    settings = {"AGENT_COMMAND": f"sh -c 'sleep {sleep:g}; {DATE}'", "PARALLEL_DAEMON": "true",
                "MAX_CONCURRENT_AGENTS": str(count)}
    with fresh_project(ctx, result, "many", settings) as project:
        write_triggers(project.paths.triggers, [f"agent-{n:03d}" for n in range(count)], count)
        history = HistoryFile(project.paths)
        with running(project) as daemon:
            spawned = wait_for_events(project.paths.daemon_log, "SPAWNED", count, timeout=sleep + 60)
            cpu = _cpu_while_asleep(daemon, min(e.at for e in spawned) + sleep, result)
            history.wait_for(count)
        records = history.records()
        check_succeeded(records)
        finished = {event.field("run"): event.at
                    for event in read_events(project.paths.daemon_log, frozenset({"FINISH"}))}
        reap_ms = [1000 * (finished[r.run_id] - printed_time(r.log)) for r in records]
    reaps = spread(reap_ms)
    result.details.update(reap_ms=reaps, cpu_percent_of_core=cpu,
                          spawn_burst_s=max(e.at for e in spawned) - min(e.at for e in spawned))
    result.rows += [
        at_most(f"exit to reap (FINISH logged), p99 (n={count})", reaps["p99"], "ms", 50.0),
        info("exit to reap, p50", reaps["p50"], "ms"),
        info("exit to reap, max", reaps["max"], "ms"),
        *_share_rows("CPU while they sleep", cpu, "%", 5.0),
    ]


def _cpu_while_asleep(daemon: Daemon, first_exit: float, result: ScenarioResult
                      ) -> dict[str, float]:
    """CPU from now (all spawned) until shortly before the first agent wakes up."""
    time.sleep(0.2)  # the last SPAWNED line is written; let that turn of the loop end
    length = first_exit - 1.0 - time.time()
    if length < 0.5:
        result.notes.append(f"spawning took too long: only {length:.2f} s left to sample CPU")
        return {"daemon": float("nan"), "keeper": float("nan"), "sum": float("nan")}
    window = CpuWindow(daemon.processes())
    window.open()
    time.sleep(length)
    return window.close()


def _share_rows(what: str, shares: dict[str, float], unit: str, limit: float) -> list[Row]:
    """Daemon and keeper as information, the target on their sum."""
    return [at_most(f"{what}: daemon + keeper", shares["sum"], unit, limit),
            *(info(f"{what}: {role}", shares[role], unit) for role in ("daemon", "keeper")
              if role in shares)]


def idle(ctx: Context, result: ScenarioResult) -> None:
    """Nothing to do for a minute: the daemon's standing cost."""
    _idle(ctx, result, "idle", {"AGENT_COMMAND": "true"})


def idle_with_metrics(ctx: Context, result: ScenarioResult) -> None:
    """The same with METRICS_ADDRESS and NOTIFY_URLS: the heartbeat, the HTTP server's thread
    and the notifications' thread (nothing is sent: idle has nothing to tell)."""
    with socket.socket() as probe:  # a free port, given back for the daemon to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _idle(ctx, result, "idle-metrics",
          {"AGENT_COMMAND": "true", "METRICS_ADDRESS": f"127.0.0.1:{port}",
           "NOTIFY_URLS": f"json://127.0.0.1:{port}/never-called"})


def _idle(ctx: Context, result: ScenarioResult, name: str, settings: dict[str, str]) -> None:
    seconds = ctx.sizes.idle_seconds
    with fresh_project(ctx, result, name, settings) as project, running(project) as daemon:
        time.sleep(SETTLE_SECONDS)
        processes = daemon.processes()
        window = CpuWindow(processes)
        window.open()
        peak = dict.fromkeys(processes, 0.0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            for role, process in processes.items():
                peak[role] = max(peak[role], rss_mb(process))
        cpu = window.close()
    peak["sum"] = sum(peak.values())
    result.details.update(cpu_percent_of_core=cpu, rss_mb_peak=peak)
    result.rows += [*_share_rows(f"CPU over {seconds:g} s", cpu, "%", 0.5),
                    *_share_rows("RSS (peak)", peak, "MB", 40.0)]


# -- memory --------------------------------------------------------------------------------

QUEUED_LINE = b" QUEUE trigger="  # the daemon log's line for a trigger read into the queue


def backlog_memory(ctx: Context, result: ScenarioResult) -> None:
    """A backlog queued at start: the daemon's peak memory until every trigger is read."""
    count = ctx.sizes.backlog_memory
    settings = {"AGENT_COMMAND": "true", "PARALLEL_DAEMON": "true", "MAX_CONCURRENT_AGENTS": "16"}
    with fresh_project(ctx, result, "backlog-memory", settings) as project:
        write_triggers(project.paths.triggers, AGENTS, count)
        with running(project) as daemon:
            at_ready = rss_mb(daemon.process)
            deadline = time.monotonic() + 600
            while project.paths.daemon_log.read_bytes().count(QUEUED_LINE) < count:
                if time.monotonic() > deadline:
                    raise BenchError(f"{count:,} triggers not all read in 600 s")
                time.sleep(0.5)
            peak = peak_rss_mb(daemon.process)
    result.details.update(count=count, rss_mb_at_ready=at_ready, rss_mb_peak=peak)
    result.rows += [at_most(f"{count:,} queued at start: daemon peak RSS", peak, "MB", 80.0),
                    info("daemon RSS at ready", at_ready, "MB")]


def runs_memory(ctx: Context, result: ScenarioResult) -> None:
    """Runs fed a batch at a time (the queue stays short), their logs kept: does the daemon's
    memory grow with the runs behind it? RSS after the first batch and after the last, each
    once a log upkeep pass has gone over the logs."""
    total, batch = ctx.sizes.memory_runs, ctx.sizes.memory_batch
    settings = {"AGENT_COMMAND": "true", "PARALLEL_DAEMON": "true",
                "MAX_CONCURRENT_AGENTS": "16", "PROCESS_MONITOR_INTERVAL": "1"}
    rss: dict[int, float] = {}
    with fresh_project(ctx, result, "runs-memory", settings) as project:
        history = HistoryFile(project.paths)
        with running(project) as daemon:
            for done in range(batch, total + 1, batch):
                write_triggers(project.paths.triggers, AGENTS, batch, first=done - batch)
                history.wait_for(done)
                if done in (batch, total):
                    time.sleep(3.0)  # a few upkeep passes over every log
                    rss[done] = rss_mb(daemon.process)
            logs = sum(1 for _ in project.paths.logs.glob("agent-*"))
    result.details.update(rss_mb_after=rss, logs_kept=logs)
    result.rows += [info(f"daemon RSS after {batch:,} runs", rss[batch], "MB"),
                    ratio_at_most(f"daemon RSS after {total:,} runs ({logs:,} logs kept)",
                                  rss[total], "MB", rss[batch], f"after {batch:,}", 1.2)]


SCENARIOS: dict[str, tuple[str, Callable[[Context, ScenarioResult], None]]] = {
    "parallel-backlog": ("parallel backlog", parallel_backlog),
    "sequential-backlog": ("sequential backlog", sequential_backlog),
    "live-latency": ("live latency", live_latency),
    "live-latency-hung-receiver": ("live latency, notices to a hung receiver",
                                   live_latency_hung_receiver),
    "slot-turnaround": ("slot turnaround", slot_turnaround),
    "backlog-scaling": ("backlog scaling", backlog_scaling),
    "dependency-backlog": ("backlog with dependencies", dependency_backlog),
    "many-at-once": ("many runs at once", many_at_once),
    "idle": ("idle", idle),
    "idle-metrics": ("idle, metrics and notifications on", idle_with_metrics),
    "backlog-memory": ("backlog memory", backlog_memory),
    "runs-memory": ("memory against runs behind", runs_memory),
}
