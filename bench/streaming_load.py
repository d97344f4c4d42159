"""The daemon while 16 agents stream Claude Code events: its live latency and its CPU.

    python3 bench/streaming_load.py [--rounds N] [--window SECONDS] [--drops N]
                                    [--agents N] [--rate LINES_PER_S]

Three loads, each the real daemon (``starforge daemon start`` in a temporary project,
``PARALLEL_DAEMON=true``, ``AGENT_OUTPUT=claude``), measured in the same invocation:

- ``streaming``: 16 long-running agents, one per agent name, each ``bench/stream_agent.py``
  printing recorded Claude Code ``stream-json`` lines (assistant text, Bash ``tool_use``, user
  ``tool_result``; a new message id per turn) at ``--rate`` lines a second, so the keeper copies
  and parses every line and sends the daemon a progress report per run at most once a second;
- ``silent`` (the baseline): the same 16 agents printing nothing, as agents waiting on their
  model do;
- ``none``: no other agent at all.

The 16 agents run until the bench creates a marker file, then print their ``result`` line and
exit. Meanwhile, over a window of ``--window`` seconds, ``--drops`` triggers for a 17th agent
name (``live``) are renamed into ``.claude/triggers/`` one at a time, spread evenly over the
window, each once the one before has run; that agent is ``date`` printing a ``result`` line
that holds the moment it ran. Measured per load: rename to that first instruction (p50 / p99 /
max, and the rename to the daemon's ``QUEUE`` event), the daemon's and the keeper's CPU over the
window (``/proc/<pid>/stat`` user + system, % of one core), the lines the agents wrote per
second, the turns the keeper's reader counted (the result files' ``turns``, one per message id
read) against the turns written, and every replacement of ``agent-slots.json`` (inotify) with
how often each agent's ``progress`` in it changed. Prints a markdown table and the targets of
the streaming load: live latency p50 ≤ 2.5 ms, p99 ≤ 10 ms, daemon CPU < 15 % of a core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import psutil
from harness import (
    BenchError,
    HistoryFile,
    Project,
    check_succeeded,
    drop_trigger,
    read_events,
    running,
    wait_for_events,
    write_triggers,
)
from results import machine
from sampling import CpuWindow, MachineLoad, spread
from scenarios import SETTLE_SECONDS
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import ResultRecord

HERE = Path(__file__).resolve().parent
STREAM_AGENT = HERE / "stream_agent.py"
LIVE = "live"
SPAWN_TIMEOUT = 60.0
# The live agent's one instruction: date, printing a Claude Code result line whose text is the
# moment it ran (quotes escaped for shlex; the .env line holding it is single-quoted).
LIVE_ARGUMENT = (r'+{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,'
                 r'\"result\":\"%s.%N\"}')
P50_MS, P99_MS, DAEMON_CPU_PERCENT = 2.5, 10.0, 15.0  # the streaming load's targets


@dataclass(frozen=True)
class Options:
    agents: int
    rate: float
    window: float
    drops: int
    workdir: Path
    keep: bool


@dataclass(frozen=True)
class Load:
    """What one load measured."""

    name: str
    latency_ms: dict[str, float]  # rename to the live agent's first instruction
    noticed_ms: dict[str, float]  # rename to the QUEUE event
    cpu: dict[str, float]  # % of a core over the window, by process
    agents_cpu: float  # % of a core: the 16 agents together, each over its whole run
    lines_per_s: float  # streamed by the agents together, each over its whole run
    turns_written: int
    turns_counted: int  # by the keeper's reader, from the result files
    skipped_lines: int
    slot_writes_per_s: float
    progress_changes_per_s: float  # of the agent whose progress changed most often
    shortest_progress_gap_s: float  # between two changes of one agent's progress


class SlotWrites:
    """Replacements of ``agent-slots.json`` (each is renamed into place) and, per agent, when
    its ``progress`` in the file had changed since the bench first saw it."""

    def __init__(self, paths: ProjectPaths) -> None:
        self._path = paths.slots_file
        self._inotify = InotifyFD()
        self._inotify.daemon = True
        self._inotify.add_callback(os.fsencode(self._path.parent), InotifyConstants.IN_MOVED_TO,
                                   self, "slots")
        self._seen: dict[str, tuple[object, object]] = {}
        self.writes = 0
        self.changes: dict[str, list[float]] = {}  # monotonic times, by agent
        self.overflowed = False

    def start(self) -> None:
        self._inotify.start()

    def stop(self) -> None:
        self._inotify.stop()
        self._inotify.join(timeout=5)

    def on_event(self, event: InotifyEvent) -> None:
        if event.name != os.fsencode(self._path.name):
            return
        self.writes += 1
        now = time.monotonic()
        try:
            slots = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            return  # replaced again meanwhile: the next event reads the newer file
        for agent, slot in slots.items():
            progress = slot.get("progress")
            if progress:
                seen = (progress.get("turns"), progress.get("last_event_at"))
                if agent in self._seen and self._seen[agent] != seen:
                    self.changes.setdefault(agent, []).append(now)
                self._seen[agent] = seen

    def on_watch_deleted(self, wd: int) -> None:
        """The daemon folder stays while the bench watches it."""

    def on_queue_overflow(self) -> None:
        self.overflowed = True

    def shortest_gap(self) -> float:
        gaps = [later - earlier for times in self.changes.values()
                for earlier, later in pairwise(times)]
        return min(gaps, default=float("nan"))


def _prepare(project: Project, agents: list[str], silent: bool, rate: float) -> Path:
    """Each agent name as a program in ``bin/``, and ``AGENT_COMMAND`` running the one its
    trigger names; the marker file that ends the 16 agents."""
    stop = project.root / "stop"
    reports = project.root / "reports"
    programs = project.root / "bin"
    reports.mkdir()
    programs.mkdir()
    date = shutil.which("date")
    if date is None:
        raise BenchError("date is not on PATH")
    (programs / LIVE).symlink_to(date)
    mode = " --silent" if silent else ""
    for agent in agents:
        launcher = programs / agent
        launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {STREAM_AGENT} --stop {stop} "
                            f"--report {reports / agent}.json --rate {rate:g}{mode}\n")
        launcher.chmod(0o755)
    folder = str(programs)
    if "'" in folder or any(char.isspace() for char in folder):
        raise BenchError(f"the agent command cannot name {folder!r}: a quote or a space in it")
    with project.paths.env_file.open("a") as env:
        env.write(f"AGENT_COMMAND='{folder}/{{agent}} {LIVE_ARGUMENT}'\n")
    return stop


def _drop_live(project: Project, options: Options, spacing: random.Random) -> dict[str, float]:
    """The live triggers spread over the window, each once the run before has ended (the 16
    agents run on, so every finished run is a live one); then the rest of the window. When
    each rename happened, by trigger name."""
    history = HistoryFile(project.paths)
    step = options.window / options.drops
    started = time.monotonic()
    dropped = {}
    for index in range(options.drops):
        pause = started + step * (index + spacing.uniform(0.25, 0.75)) - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        name = f"live{index:05d}.trigger"
        dropped[name] = drop_trigger(project.paths.triggers, name, LIVE)
        history.wait_for(index + 1, interval=0.002)
    time.sleep(max(0.0, started + options.window - time.monotonic()))
    return dropped


def _reports(folder: Path, agents: list[str], window_end: float) -> list[dict[str, float]]:
    """What each of the 16 agents wrote; each must have run past the window."""
    reports = []
    for agent in agents:
        report = json.loads((folder / f"{agent}.json").read_text())
        if report["ended"] < window_end:
            raise BenchError(f"{agent} ended before the measurement window did")
        reports.append(report)
    return reports


def measure(options: Options, name: str, agents: list[str], silent: bool,
            spacing: random.Random, notes: list[str]) -> Load:
    """One load in a fresh project, its daemon started and stopped through the CLI."""
    settings = {"PARALLEL_DAEMON": "true", "MAX_CONCURRENT_AGENTS": str(len(agents) + 1),
                "AGENT_OUTPUT": "claude"}
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    load = MachineLoad(options.workdir)
    project = Project.create(options.workdir, name, settings)
    try:
        stop = _prepare(project, agents, silent, options.rate)
        write_triggers(project.paths.triggers, agents, len(agents))
        with running(project) as daemon:
            wait_for_events(project.paths.daemon_log, "SPAWNED", len(agents), SPAWN_TIMEOUT)
            time.sleep(SETTLE_SECONDS)
            slots = SlotWrites(project.paths)
            slots.start()
            window = CpuWindow(daemon.processes())
            window.open()
            dropped = _drop_live(project, options, spacing)
            cpu = window.close()
            window_end = time.time()
            slots.stop()
            stop.touch()
            HistoryFile(project.paths).wait_for(options.drops + len(agents))
        records = HistoryFile(project.paths).records()
        check_succeeded(records)
        reports = _reports(project.root / "reports", agents, window_end)
        queued = {event.field("trigger"): event.at
                  for event in read_events(project.paths.daemon_log, frozenset({"QUEUE"}))}
    finally:
        notes.extend(f"{name}: {note}" for note in project.notes)
        if options.keep:
            notes.append(f"{name}: project kept in {project.root}")
        else:
            project.remove()
    if "keeper" not in cpu:
        raise BenchError("the keeper was not found: its CPU is unknown")
    if slots.overflowed:
        notes.append(f"{name}: the inotify queue overflowed: slot-file writes undercounted")
    notes.append("{name}: machine: load average {load_average_before:.2f} -> "
                 "{load_average_after:.2f}, CPUs {cpus_busy_percent:.0f} % busy (the agents, "
                 "the keeper and the daemon included)".format(name=name, **load.summary()))
    live = [record for record in records if record.agent == LIVE]
    streams = [record for record in records if record.agent != LIVE]
    seconds = cpu["seconds"]
    return Load(
        name=name,
        latency_ms=spread([1000 * (_ran_at(record) - dropped[str(record.trigger)])
                           for record in live]),
        noticed_ms=spread([1000 * (queued[record.trigger] - dropped[str(record.trigger)])
                           for record in live]),
        cpu=cpu,
        agents_cpu=sum(100 * (record.cpu_seconds or 0) / (record.duration_s or math.inf)
                       for record in streams),
        lines_per_s=sum(report["lines"] / (report["ended"] - report["started"])
                        for report in reports),
        turns_written=sum(int(report["turns"]) for report in reports),
        turns_counted=sum(record.turns or 0 for record in streams),
        skipped_lines=sum(record.skipped_lines or 0 for record in streams),
        slot_writes_per_s=slots.writes / seconds,
        progress_changes_per_s=max(map(len, slots.changes.values()), default=0) / seconds,
        shortest_progress_gap_s=slots.shortest_gap())


def _ran_at(record: ResultRecord) -> float:
    """When the live agent ran: the text of the result line it printed."""
    if record.result_text is None:
        raise BenchError(f"{record.trigger}: the live agent's result line has no text")
    return float(record.result_text)


# -- the report ------------------------------------------------------------------------------

def table(loads: list[Load]) -> str:
    lines = ["| load | live latency p50 / p99 / max | of which noticed (QUEUE) p50 / p99 | "
             "daemon CPU | keeper CPU | agents' CPU | lines/s streamed (all agents) | "
             "turns counted / written | slot-file writes/s | progress changes/s, busiest agent "
             "(shortest gap) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for load in loads:
        latency, noticed = load.latency_ms, load.noticed_ms
        lines.append(
            f"| {load.name} | {latency['p50']:.2f} / {latency['p99']:.2f} / {latency['max']:.2f} "
            f"ms (n={latency['n']}) | {noticed['p50']:.2f} / {noticed['p99']:.2f} ms | "
            f"{load.cpu['daemon']:.1f} % | {load.cpu['keeper']:.1f} % | {load.agents_cpu:.1f} % "
            f"| {load.lines_per_s:,.0f} "
            f"| {load.turns_counted:,} / {load.turns_written:,} | {load.slot_writes_per_s:.1f} | "
            f"{_progress_cell(load)} |")
    return "\n".join(lines)


def _progress_cell(load: Load) -> str:
    if not load.progress_changes_per_s:
        return "-"
    return f"{load.progress_changes_per_s:.2f} ({load.shortest_progress_gap_s:.2f} s)"


def verdicts(load: Load) -> list[tuple[str, bool]]:
    """The targets, checked on a streaming load: each line and whether it is met."""
    daemon = load.cpu["daemon"]
    checks = [(f"live latency p50 {load.latency_ms['p50']:.2f} ms (target ≤ {P50_MS:g})",
               load.latency_ms["p50"] <= P50_MS),
              (f"live latency p99 {load.latency_ms['p99']:.2f} ms (target ≤ {P99_MS:g})",
               load.latency_ms["p99"] <= P99_MS),
              (f"daemon CPU {daemon:.2f} % of a core (target < {DAEMON_CPU_PERCENT:g})",
               daemon < DAEMON_CPU_PERCENT),
              (f"every turn written was counted by the keeper ({load.turns_counted:,} of "
               f"{load.turns_written:,}; {load.skipped_lines} lines skipped)",
               load.turns_counted == load.turns_written and load.skipped_lines == 0)]
    return [(f"{load.name}: {text}", met) for text, met in checks]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the three loads this many times, alternating")
    parser.add_argument("--agents", type=int, default=16, help="long-running agents")
    parser.add_argument("--rate", type=float, default=200.0, help="lines per second per agent")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per load")
    parser.add_argument("--drops", type=int, default=100, help="live triggers per window")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary projects go (default: the system temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="starforge-streaming-", dir=args.workdir))
    options = Options(args.agents, args.rate, args.window, args.drops, workdir, args.keep)
    agents = [f"stream-{number:02d}" for number in range(args.agents)]
    loads_to_run = (("none", [], True), ("silent", agents, True), ("streaming", agents, False))
    box = machine(HERE.parent)
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    spacing = random.Random(7)
    loads: list[Load] = []
    notes: list[str] = []
    try:
        for round_number in range(1, args.rounds + 1):
            for name, names, silent in loads_to_run:
                label = f"{name}-{round_number}" if args.rounds > 1 else name
                loads.append(measure(options, label, names, silent, spacing, notes))
    except (BenchError, OSError, subprocess.SubprocessError, psutil.Error) as error:
        notes.append(f"stopped: {type(error).__name__}: {error}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    checked = [verdict for load in loads if load.name.startswith("streaming")
               for verdict in verdicts(load)]
    print(f"starforge streaming load, {started_at}: {box['cpus_usable']} CPUs, Linux "
          f"{box['kernel']}, Python {box['python']}, revision {box['revision']}; load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {args.agents} agents at "
          f"{args.rate:g} lines/s each, {args.window:g} s window, {args.drops} live triggers\n")
    print(table(loads))
    print()
    print("\n".join([*(f"- {text}: {'PASS' if met else 'FAIL'}" for text, met in checked),
                     *(f"- {note}" for note in notes)]))
    complete = len(loads) == len(loads_to_run) * args.rounds
    return 0 if complete and all(met for _, met in checked) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
