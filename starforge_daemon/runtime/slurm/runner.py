"""The Slurm backend: each run is one batch job (``batch.py``), and the controller keeps it alive
whatever becomes of the daemon; the daemon stays the one owner of the slots.

A run's job is named ``sf-<project id>.<agent>`` with ``--dependency=singleton`` (Slurm itself
never runs two jobs of one agent at once) and carries the run id in its comment. Its handle is
the job id (in ``pid``) and its submit time; once ``sbatch`` answers, the handle is appended to
the run's journal as a local run's ``started`` line is. A daemon that died between the two finds
the job by the run id in its comment when it starts again, and journals it then: a run is never
submitted twice.

Jobs are followed by polling ``squeue --json`` on a thread of its own (``POLL_INTERVAL``) that
wakes the loop through a pipe; the ends are turned into run events on the loop's thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starforge_daemon.core.models import ProcessIdentity, RunExit
from starforge_daemon.core.runids import parse_run_id
from starforge_daemon.runtime.api import (
    Exited,
    LaunchSpec,
    Reconciled,
    RunEvent,
    RunnerError,
    Started,
    Watcher,
)
from starforge_daemon.runtime.slurm import batch
from starforge_daemon.runtime.slurm.cluster import Cluster, ClusterError, Job, exit_code
from starforge_daemon.store.atomic import append_json_line, write_new
from starforge_daemon.store.journal import RunJournal, find_entry
from starforge_daemon.store.paths import ProjectPaths

POLL_INTERVAL = 0.5  # seconds between two looks at the jobs while any is followed
BATCH_SCRIPT = Path(batch.__file__)
_FAILURES = {"NODE_FAIL": "its node failed", "BOOT_FAIL": "its node failed to boot",
             "PREEMPTED": "it was preempted", "DEADLINE": "it passed its deadline"}


@dataclass(frozen=True)
class JobOptions:
    """What every run's ``sbatch`` gets besides its own: partition and site flags."""

    job_prefix: str  # sf-<project id>.
    partition: str | None
    extra: tuple[str, ...]
    kill_grace: float


@dataclass(frozen=True)
class _Look:
    """One poll: the jobs asked about (run id -> job id) and what squeue said (None: no answer)."""

    asked: dict[str, int]
    jobs: dict[int, Job] | None


def _handle(job_id: int) -> ProcessIdentity:
    """A job's handle: its id, and its submit time as seconds since boot (a local process's
    ``start``)."""
    return ProcessIdentity(pid=job_id, start=time.clock_gettime(time.CLOCK_BOOTTIME))


def run_exit(job: Job, journalled: RunExit | None, now: float) -> RunExit:
    """How a run whose job is over ended: what its batch script recorded, unless Slurm ended
    the job itself (node failure, out of memory, preemption), which says why."""
    ended_at = job.end_time or now
    if job.state in _FAILURES:
        return RunExit(ended_at=ended_at, error=f"the Slurm job {job.job_id} ended because "
                       f"{_FAILURES[job.state]} ({job.state})")
    if job.state == "OUT_OF_MEMORY":
        return RunExit(ended_at=ended_at, exit_code=exit_code(job), oom_kills=1)
    return journalled or RunExit(ended_at=ended_at, exit_code=exit_code(job))


class SlurmRunner:
    def __init__(self, cluster: Cluster, paths: ProjectPaths, reactor: Watcher, *,
                 options: JobOptions, stop_signal: signal.Signals) -> None:
        self._cluster = cluster
        self._paths = paths
        self._reactor = reactor
        self._options = options
        self._stop_signal = stop_signal
        self._jobs: dict[str, int] = {}  # followed: run id -> job id (read by the poll thread)
        self._found: dict[int, Job] = {}  # the project's jobs the controller knew at connect
        self._events: list[RunEvent] = []
        self._lock = threading.Lock()
        self._looks: queue.SimpleQueue[_Look] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._reachable = False
        self._bell_read, self._bell_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller: threading.Thread | None = None

    @property
    def containment(self) -> str:
        partition = self._options.partition or "the default partition"
        return f"Slurm jobs on {partition}, each in its job's cgroup"

    @property
    def reachable(self) -> bool:
        """The controller answered the latest look at the jobs."""
        return self._reachable

    def can_follow(self, run_id: str) -> bool:
        """A job waits in Slurm's queue anyway: runs are not handed over ahead."""
        return False

    def withdraw(self, run_id: str) -> None:
        raise RunnerError("Slurm runs are not launched behind another")

    def connect(self) -> None:
        """Reach the controller, learn the project's jobs and journal the ones an earlier
        daemon submitted without journalling them; then start following jobs."""
        try:
            self._cluster.ping()
            jobs = self._cluster.jobs()
        except ClusterError as error:
            raise RunnerError(f"the Slurm controller does not answer: {error}") from None
        self._reachable = True
        self._found = {job.job_id: job for job in jobs
                       if job.name.startswith(self._options.job_prefix)}
        self._journal_unrecorded()
        self._reactor.watch(self._bell_read, self._take_looks)
        self._poller = threading.Thread(target=self._poll, name="slurm-poll", daemon=True)
        self._poller.start()

    def _journal_unrecorded(self) -> None:
        by_run = {job.comment: job for job in self._found.values()}
        for entry in RunJournal(self._paths).entries():
            run_id = entry.run.run_id
            job = by_run.get(run_id)
            if entry.agent is None and job is not None:
                self._journal_started(entry.path, run_id, _handle(job.job_id))

    @staticmethod
    def _journal_started(journal: Path, run_id: str, handle: ProcessIdentity) -> None:
        append_json_line(journal, {"run_id": run_id, "started": {
            "pid": handle.pid, "start": handle.start}})

    def launch(self, spec: LaunchSpec) -> None:
        """Submit the run's job; the spec file holds what must not pass through a shell."""
        parsed = parse_run_id(spec.run_id)
        agent = parsed.agent if parsed else spec.run_id
        spec_file = self._paths.runs / f"{spec.run_id}.job.json"
        write_new(spec_file, json.dumps({
            "run_id": spec.run_id, "argv": spec.argv, "env": spec.env, "cwd": spec.cwd,
            "stdin": None if spec.stdin is None else str(spec.stdin), "log_cap": spec.log_cap,
            "journal": str(spec.journal)}).encode(), mode=0o600)
        try:
            job_id = self._cluster.submit(self._job_options(spec, agent), str(BATCH_SCRIPT),
                                          str(spec_file))
        except ClusterError as error:
            spec_file.unlink(missing_ok=True)
            self._check_controller()
            raise RunnerError(f"sbatch: {error}") from None
        handle = _handle(job_id)
        self._journal_started(spec.journal, spec.run_id, handle)
        self._follow(spec.run_id, job_id)
        self._events.append(Started(spec.run_id, handle))

    def _job_options(self, spec: LaunchSpec, agent: str) -> list[str]:
        options = self._options
        limit = spec.timeout + options.kill_grace if spec.timeout is not None else None
        return [f"--job-name={options.job_prefix}{agent}", f"--comment={spec.run_id}",
                "--dependency=singleton", "--no-requeue", f"--chdir={spec.cwd}",
                f"--output={spec.log_path}", "--open-mode=append",
                *([f"--time={math.ceil(limit / 60)}"] if limit is not None else []),
                *([f"--partition={options.partition}"] if options.partition else []),
                *options.extra]

    def _check_controller(self) -> None:
        """After a failed command: when the controller does not answer, new runs wait (the
        daemon asks ``reachable``) until the poll thread sees it answer again."""
        try:
            self._cluster.ping()
        except ClusterError:
            self._reachable = False
            self._wake.set()

    def _follow(self, run_id: str, job_id: int) -> None:
        with self._lock:
            self._jobs[run_id] = job_id
        self._wake.set()

    def reconcile(self, open_runs: Mapping[str, ProcessIdentity | None]) -> Reconciled:
        """Follow the runs whose job the controller still knows (an ended one is reaped on the
        first look, with its real status); cancel the project's jobs no open run owns."""
        followed: dict[str, ProcessIdentity] = {}
        for run_id, handle in open_runs.items():
            job = self._found.get(handle.pid) if handle is not None else None
            if handle is not None and job is not None and job.comment == run_id:
                self._follow(run_id, job.job_id)
                followed[run_id] = handle
        owned = {self._jobs[run_id] for run_id in followed}
        for job in self._found.values():
            if job.job_id not in owned and not job.over:
                with contextlib.suppress(ClusterError):
                    self._cluster.cancel(job.job_id)
        return Reconciled(followed)

    def stop(self, run_id: str, force: bool) -> None:
        """The stop signal to every process of the job's batch step; ``force``: SIGKILL, then
        the job is cancelled (its cgroup takes whatever escaped its process group)."""
        job_id = self._jobs.get(run_id)
        if job_id is None:
            return
        with contextlib.suppress(ClusterError):
            self._cluster.signal(job_id, "KILL" if force else self._stop_signal.name)
            if force:
                self._cluster.cancel(job_id)

    def take_events(self) -> list[RunEvent]:
        events, self._events = self._events, []
        return events

    # -- following jobs ----------------------------------------------------------------------

    def _poll(self) -> None:
        """The poll thread: look at the jobs while any is followed, or while the controller
        does not answer; ring the loop's bell."""
        while not self._closing.is_set():
            with self._lock:
                asked = dict(self._jobs)
            if not asked and self._reachable:
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                jobs: dict[int, Job] | None = {job.job_id: job for job in self._cluster.jobs()}
            except ClusterError:
                jobs = None
            self._looks.put(_Look(asked, jobs))
            with contextlib.suppress(BlockingIOError):
                os.write(self._bell_write, b"\0")
            self._closing.wait(POLL_INTERVAL)

    def _take_looks(self) -> None:
        """On the loop's thread: the runs whose job is over (or gone) end."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._bell_read, 4096)
        while not self._looks.empty():
            look = self._looks.get()
            self._reachable = look.jobs is not None
            if look.jobs is None:
                continue
            for run_id, job_id in look.asked.items():
                job = look.jobs.get(job_id)
                if self._jobs.get(run_id) == job_id and (job is None or job.over):
                    self._ended(run_id, job)

    def _ended(self, run_id: str, job: Job | None) -> None:
        """``job`` None: the controller forgot it; only the journal can tell how it ended."""
        with self._lock:
            del self._jobs[run_id]
        entry = find_entry(self._paths.runs, run_id)
        journalled = entry.ended if entry is not None else None
        (self._paths.runs / f"{run_id}.job.json").unlink(missing_ok=True)
        ended = run_exit(job, journalled, time.time()) if job is not None else journalled
        self._events.append(Exited(run_id, ended))

    def close(self) -> None:
        """Stop following (the jobs go on: the next daemon adopts them)."""
        self._closing.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
            self._reactor.forget(self._bell_read)
        os.close(self._bell_read)
        os.close(self._bell_write)

