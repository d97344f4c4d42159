"""Process containers for agent runs: when a run ends, nothing it started remains.

Claude Code's Bash tool starts each command with ``setsid``, so a run's session or process
group misses them. Where the host lets the daemon's user write a cgroup v2 hierarchy with
``cgroup.kill`` (Linux 5.14+), every run gets a cgroup of its own,
``<root>/<project-id>/<run-id>``: membership follows ``fork`` whatever the child does, the
kernel kills all members at once, and ``cpu.stat`` / ``memory.peak`` account for the whole run.
Elsewhere the fallback, ``sweep``, finds a run's processes by the ``STARFORGE_RUN_ID=<run-id>``
every agent inherits (and by the session of its first process) in ``/proc``; a process that
clears its environment escapes it, and its CPU and memory figures are sampled, so approximate.

Standard library only: the keeper (``python3 -I -S keeper.py``) imports this file as a sibling
module (``import containment``); the daemon imports it as ``starforge_daemon.runtime.local.containment``.
Its pieces are sibling modules, imported the same two ways: ``run_container`` (one run's
container), ``cgroups``, ``sweep``, and what those two share, ``processes``.

The daemon calls ``detect`` and ``prepare`` once at start (before the keeper starts: under a
delegated systemd unit ``prepare`` moves the daemon into a leaf cgroup the keeper inherits),
then ``remove_stale`` once it knows which runs are in flight. The keeper calls
``RunContainer.create`` / ``spawn`` for each run and ``RunContainer.end`` when its first process
has exited; the daemon signals a run with ``RunContainer.signal``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

if __package__:
    from . import cgroup_spawn, cgroups, processes, run_container, sweep
else:  # beside keeper.py, run as a script (python3 -I -S): plain sibling modules
    import cgroup_spawn
    import cgroups
    import processes
    import run_container
    import sweep

ROOT_ENV = "STARFORGE_CGROUP_ROOT"  # a cgroup2 folder to hold the projects' folders
MODE_ENV = "STARFORGE_CONTAINMENT"  # "sweep" forces the fallback
LIMIT_CONTROLLERS = ("memory", "pids")
DAEMON_LEAF = "daemon"  # under a delegated unit: the daemon's own cgroup
RUNS_FOLDER = "runs"  # under a delegated unit: the projects' folders
OWN_FOLDER = "starforge"  # under a writable hierarchy root
SYSTEM_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")

Mechanism = Literal["cgroup", "sweep"]


@dataclass(frozen=True)
class Containment:
    """How a project's runs are contained; ``text`` is the line for MODE and ``status``.

    ``project`` is the project's cgroup folder (the runs' cgroups are its children), ``leaf``
    the cgroup the daemon moves itself into under a delegated unit (cgroup2 allows no processes
    in a cgroup that hands controllers to children). ``controllers`` are the limit controllers
    (memory, pids) the runs get; ``note`` says why cgroups or limits are missing.
    """

    mechanism: Mechanism
    root: str | None = None
    project: str | None = None
    leaf: str | None = None
    controllers: tuple[str, ...] = ()
    note: str = ""

    @property
    def text(self) -> str:
        if self.mechanism == "sweep":
            return (f"containment: sweep of processes carrying {sweep.RUN_ID_ENV} ({self.note}); "
                    "CPU and peak memory approximate")
        missing = [name for name in LIMIT_CONTROLLERS if name not in self.controllers]
        limits = f"limits: {', '.join(self.controllers)}" if self.controllers else ""
        if missing:
            unavailable = f"{', '.join(missing)} limits unavailable: {self.note}"
            limits = f"{limits}; {unavailable}" if limits else unavailable
        entry = ("runs enter it at spawn" if cgroup_spawn.native_spawn_usable() else
                 "runs enter it by migration: the package was installed without a C compiler")
        return f"containment: cgroup v2 at {self.project} ({'; '.join(filter(None, (limits, entry)))})"

    def run(self, run_id: str, agent: str | None = None) -> run_container.RunContainer:
        """The container of run ``run_id`` (not created yet). Given its ``agent``, the run
        shares that agent's cgroup, unless peak memory is measured by the cgroup: that needs a
        cgroup of the run's own."""
        if self.project is None:
            return run_container.RunContainer(run_id)
        if agent is None or "memory" in self.controllers:
            return run_container.RunContainer(run_id, cgroups.child(self.project, run_id))
        return run_container.RunContainer(run_id, cgroups.child(self.project, f"agent-{agent}"),
                                          shared=True)



# -- detection ---------------------------------------------------------------------------------



def _v1_controllers() -> set[str]:
    """Controllers bound to cgroup v1 hierarchies, which cgroup2 then cannot offer."""
    found: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/self/cgroup", encoding="utf-8") as file:
        for line in file:
            number, controllers, _ = line.split(":", 2)
            if number != "0":
                found.update(controllers.split(","))
    return found


def _writable(folder: str) -> bool:
    return os.access(folder, os.W_OK) and os.access(cgroups.child(folder, "cgroup.procs"), os.W_OK)


def _delegated(folder: str) -> bool:
    """systemd marks a delegated cgroup (Delegate=yes) with an xattr (v251+); before that, a
    unit run as User= with delegation owns its cgroup while the slice above belongs to root."""
    for name in ("trusted.delegate", "user.delegate"):
        with contextlib.suppress(OSError):
            if os.getxattr(folder, name) == b"1":
                return True
    uid = os.geteuid()
    if uid == 0:
        return False
    try:
        return (os.stat(folder).st_uid == uid
                and os.stat(os.path.dirname(folder)).st_uid != uid)
    except OSError:
        return False


def _kernel_has_kill() -> bool:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= (5, 14)


def project_id(project_dir: str | os.PathLike[str]) -> str:
    """A short, stable, cgroup-safe name for a project: its folder's name and a path hash."""
    real = os.path.realpath(project_dir)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.basename(real))[:32] or "project"
    return f"{name}-{hashlib.sha256(real.encode()).hexdigest()[:10]}"


def _sweep(note: str) -> Containment:
    return Containment("sweep", note=note)


def _offered(top: str) -> tuple[str, ...]:
    """The limit controllers ``prepare`` can enable from ``top`` (maybe not made yet) down."""
    if os.path.isdir(top):
        offered = cgroups.read_words(cgroups.child(top, "cgroup.controllers"))
    else:  # a new child gets what its parent enables for its children
        offered = cgroups.read_words(cgroups.child(os.path.dirname(top), "cgroup.subtree_control"))
    return tuple(name for name in LIMIT_CONTROLLERS if name in offered)


def _missing_note(top: str, controllers: tuple[str, ...]) -> str:
    """Why limit controllers are missing ('' when none is)."""
    missing = [name for name in LIMIT_CONTROLLERS if name not in controllers]
    on_v1 = [name for name in missing if name in _v1_controllers()]
    if on_v1:
        return f"{', '.join(on_v1)} mounted as cgroup v1"
    return f"controllers not enabled above {top}" if missing else ""


def _candidate(root: str, project: str, leaf: str | None = None) -> Containment:
    top = os.path.dirname(leaf) if leaf is not None else root
    controllers = _offered(top)
    return Containment("cgroup", root=root, project=cgroups.child(root, project), leaf=leaf,
                       controllers=controllers, note=_missing_note(top, controllers))


def detect(project_dir: str | os.PathLike[str], *, root: str | None = None,
           force_sweep: bool | None = None) -> Containment:
    """Which container this host offers the daemon's user; reads, changes nothing.

    Candidates in order: ``root`` (else ``$STARFORGE_CGROUP_ROOT``), which is final when set;
    the process's own cgroup when it is a delegated unit; ``/sys/fs/cgroup`` and
    ``/sys/fs/cgroup/unified`` when they are writable cgroup2 mounts. ``force_sweep`` (else
    ``$STARFORGE_CONTAINMENT=sweep``) skips them all.
    """
    if force_sweep is None:
        force_sweep = os.environ.get(MODE_ENV, "").strip().lower() == "sweep"
    if force_sweep:
        return _sweep(f"{MODE_ENV}=sweep" if os.environ.get(MODE_ENV) else "sweep forced")
    if not _kernel_has_kill():
        return _sweep(f"kernel {os.uname().release} has no cgroup.kill (5.14+)")
    name = project_id(project_dir)
    explicit = root if root is not None else os.environ.get(ROOT_ENV) or None
    if explicit is not None:
        if not os.path.isdir(explicit) or cgroups.cgroup2_mount(explicit) is None \
                or not os.path.exists(cgroups.child(explicit, "cgroup.procs")):
            return _sweep(f"{explicit} is not a cgroup2 folder")
        if not _writable(explicit):
            return _sweep(f"{explicit} is not writable")
        return _candidate(os.path.realpath(explicit), name)
    own = cgroups.own_cgroup_dir()
    if own is not None:  # a delegated unit; a daemon that moved into its leaf finds it again
        unit = os.path.dirname(own) if os.path.basename(own) == DAEMON_LEAF else own
        mount = cgroups.cgroup2_mount(unit)
        if mount is not None and unit != mount.point and _delegated(unit) and _writable(unit):
            return _candidate(cgroups.child(unit, RUNS_FOLDER), name, cgroups.child(unit, DAEMON_LEAF))
    for point in SYSTEM_MOUNTS:
        mount = cgroups.cgroup2_mount(point)
        if mount is None or mount.point != point:
            continue
        folder = cgroups.child(point, OWN_FOLDER)
        if _writable(folder if os.path.isdir(folder) else point):
            return _candidate(folder, name)
    return _sweep("no writable cgroup2 hierarchy")


# -- preparing the project's folder ------------------------------------------------------------


def _enable(folder: str, wanted: Sequence[str]) -> str:
    """Enable ``wanted`` controllers for ``folder``'s children; returns why not, or ''."""
    problems = []
    for name in wanted:
        try:
            cgroups.write(cgroups.child(folder, "cgroup.subtree_control"), f"+{name}")
        except OSError as error:
            reason = "it holds processes" if error.errno == errno.EBUSY else error.strerror
            problems.append(f"cannot enable {name} in {folder}: {reason}")
    return "; ".join(problems)


def prepare(containment: Containment) -> Containment:
    """Make the project's folder (and move the daemon into its leaf under a delegated unit);
    returns the containment as it turned out: sweep when the folder cannot be made."""
    if containment.mechanism == "sweep":
        return containment
    assert containment.root is not None and containment.project is not None
    try:
        if containment.leaf is not None:
            os.makedirs(containment.leaf, exist_ok=True)
            cgroups.write(cgroups.child(containment.leaf, "cgroup.procs"), str(os.getpid()))
        os.makedirs(containment.project, exist_ok=True)
    except OSError as error:
        return _sweep(f"cannot use {containment.project}: {error.strerror}")
    if not os.path.exists(cgroups.child(containment.project, "cgroup.kill")):
        return _sweep(f"{containment.project} has no cgroup.kill")
    problems = []
    top = os.path.dirname(containment.leaf) if containment.leaf is not None else containment.root
    folder = top
    for part in [None, *os.path.relpath(containment.project, top).split(os.sep)]:
        folder = folder if part is None else cgroups.child(folder, part)
        offered = cgroups.read_words(cgroups.child(folder, "cgroup.controllers"))
        problem = _enable(folder, [name for name in LIMIT_CONTROLLERS if name in offered])
        if problem:
            problems.append(problem)
    enabled = cgroups.read_words(cgroups.child(containment.project, "cgroup.subtree_control"))
    controllers = tuple(name for name in LIMIT_CONTROLLERS if name in enabled)
    note = "; ".join(problems) or _missing_note(top, controllers)
    return Containment("cgroup", root=containment.root, project=containment.project,
                       leaf=containment.leaf, controllers=controllers, note=note)


def remove_stale(containment: Containment, in_flight: set[str] | frozenset[str],
                 timeout: float = processes.KILL_TIMEOUT) -> list[str]:
    """Kill and remove this project's cgroups that no run in flight uses (``in_flight``: the
    cgroups' names); their names."""
    if containment.project is None or not os.path.isdir(containment.project):
        return []
    removed = []
    for entry in os.scandir(containment.project):
        stale = entry.is_dir(follow_symlinks=False) and entry.name not in in_flight
        if stale and cgroups.kill_all(entry.path, timeout).removed:
            removed.append(entry.name)
    return removed
