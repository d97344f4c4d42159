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

The daemon calls ``detect`` and ``prepare`` once at start (before the keeper starts: under a
delegated systemd unit ``prepare`` moves the daemon into a leaf cgroup the keeper inherits),
then ``remove_stale`` once it knows which runs are in flight. The keeper calls
``RunContainer.create`` / ``spawn`` for each run and ``RunContainer.end`` when its first process
has exited; the daemon signals a run with ``RunContainer.signal``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import select
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from resource import struct_rusage

ROOT_ENV = "STARFORGE_CGROUP_ROOT"  # a cgroup2 folder to hold the projects' folders
MODE_ENV = "STARFORGE_CONTAINMENT"  # "sweep" forces the fallback
RUN_ID_ENV = "STARFORGE_RUN_ID"
LIMIT_CONTROLLERS = ("memory", "pids")
DAEMON_LEAF = "daemon"  # under a delegated unit: the daemon's own cgroup
RUNS_FOLDER = "runs"  # under a delegated unit: the projects' folders
OWN_FOLDER = "starforge"  # under a writable hierarchy root
SYSTEM_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
KILL_TIMEOUT = 5.0
_CGROUP2 = "cgroup2"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_ROUND = 0.02  # between sweeps while killed processes die

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
            return (f"containment: sweep of processes carrying {RUN_ID_ENV} ({self.note}); "
                    "CPU and peak memory approximate")
        missing = [name for name in LIMIT_CONTROLLERS if name not in self.controllers]
        limits = f"limits: {', '.join(self.controllers)}" if self.controllers else ""
        if missing:
            unavailable = f"{', '.join(missing)} limits unavailable: {self.note}"
            limits = f"{limits}; {unavailable}" if limits else unavailable
        return f"containment: cgroup v2 at {self.project} ({limits})"

    def run(self, run_id: str) -> RunContainer:
        """The container of run ``run_id`` (not created yet)."""
        if self.project is None:
            return RunContainer(run_id)
        return RunContainer(run_id, _child(self.project, run_id))


@dataclass(frozen=True)
class Usage:
    """What a run consumed. None where unknown; ``note`` says what is missing and why."""

    cpu_seconds: float | None
    peak_memory: int | None  # bytes
    oom_kills: int | None
    approximate: bool
    note: str = ""


@dataclass(frozen=True)
class RunEnd:
    """``left``: processes still there at the deadline (empty: the container is empty)."""

    usage: Usage
    left: tuple[int, ...]
    removed: bool  # the run's cgroup is gone (always True for a sweep)


# -- detection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    point: str
    root: str  # the hierarchy path mounted at ``point``
    fstype: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _mounts() -> list[_Mount]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as file:
        for line in file:
            fields = line.split()
            after = fields.index("-")
            mounts.append(_Mount(_unescape(fields[4]), _unescape(fields[3]), fields[after + 1]))
    return mounts


def _cgroup2_mount(path: str) -> _Mount | None:
    """The cgroup2 mount ``path`` lies in, when the mount that holds it is one."""
    real = os.path.realpath(path)
    holding = [mount for mount in _mounts()
               if real == mount.point or real.startswith(mount.point.rstrip("/") + "/")]
    if not holding:
        return None
    mount = max(holding, key=lambda mount: len(mount.point))
    return mount if mount.fstype == _CGROUP2 else None


@functools.lru_cache(maxsize=16)
def _project_mount(project: str) -> _Mount | None:
    """The mount of a project's folder, looked up once: a spawn costs 0.1 ms less."""
    return _cgroup2_mount(project)


def _hierarchy_path(path: str) -> str:
    """``path`` as /proc/<pid>/cgroup names it."""
    mount = _cgroup2_mount(path)
    if mount is None:
        raise OSError(errno.EINVAL, "not in a cgroup2 mount", path)
    relative = os.path.relpath(os.path.realpath(path), mount.point)
    return os.path.normpath(os.path.join(mount.root, "" if relative == "." else relative))


def _own_cgroup(pid: int | str = "self") -> str | None:
    """The cgroup2 path of a process, as in /proc/<pid>/cgroup (``0::/path``)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="surrogateescape") as file:
            for line in file:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n").removesuffix(" (deleted)")
    except OSError:
        return None
    return None


def _own_cgroup_dir() -> str | None:
    """This process's cgroup as a folder, through a cgroup2 mount that shows it."""
    path = _own_cgroup()
    if path is None:
        return None
    for mount in _mounts():
        if mount.fstype != _CGROUP2:
            continue
        if path == mount.root or path.startswith(mount.root.rstrip("/") + "/"):
            return os.path.normpath(os.path.join(mount.point, os.path.relpath(path, mount.root)))
    return None


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
    return os.access(folder, os.W_OK) and os.access(_child(folder, "cgroup.procs"), os.W_OK)


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


def _readable_list(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="ascii") as file:
            return tuple(file.read().split())
    except OSError:
        return ()


def _offered(top: str) -> tuple[str, ...]:
    """The limit controllers ``prepare`` can enable from ``top`` (maybe not made yet) down."""
    if os.path.isdir(top):
        offered = _readable_list(_child(top, "cgroup.controllers"))
    else:  # a new child gets what its parent enables for its children
        offered = _readable_list(_child(os.path.dirname(top), "cgroup.subtree_control"))
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
    return Containment("cgroup", root=root, project=_child(root, project), leaf=leaf,
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
        if not os.path.isdir(explicit) or _cgroup2_mount(explicit) is None \
                or not os.path.exists(_child(explicit, "cgroup.procs")):
            return _sweep(f"{explicit} is not a cgroup2 folder")
        if not _writable(explicit):
            return _sweep(f"{explicit} is not writable")
        return _candidate(os.path.realpath(explicit), name)
    own = _own_cgroup_dir()
    if own is not None:  # a delegated unit; a daemon that moved into its leaf finds it again
        unit = os.path.dirname(own) if os.path.basename(own) == DAEMON_LEAF else own
        mount = _cgroup2_mount(unit)
        if mount is not None and unit != mount.point and _delegated(unit) and _writable(unit):
            return _candidate(_child(unit, RUNS_FOLDER), name, _child(unit, DAEMON_LEAF))
    for point in SYSTEM_MOUNTS:
        mount = _cgroup2_mount(point)
        if mount is None or mount.point != point:
            continue
        folder = _child(point, OWN_FOLDER)
        if _writable(folder if os.path.isdir(folder) else point):
            return _candidate(folder, name)
    return _sweep("no writable cgroup2 hierarchy")


# -- preparing the project's folder ------------------------------------------------------------


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as file:
        return file.read()


def _child(folder: str, name: str) -> str:
    return os.path.join(folder, name)


def _enable(folder: str, wanted: Sequence[str]) -> str:
    """Enable ``wanted`` controllers for ``folder``'s children; returns why not, or ''."""
    problems = []
    for name in wanted:
        try:
            _write(_child(folder, "cgroup.subtree_control"), f"+{name}")
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
            _write(_child(containment.leaf, "cgroup.procs"), str(os.getpid()))
        os.makedirs(containment.project, exist_ok=True)
    except OSError as error:
        return _sweep(f"cannot use {containment.project}: {error.strerror}")
    if not os.path.exists(_child(containment.project, "cgroup.kill")):
        return _sweep(f"{containment.project} has no cgroup.kill")
    problems = []
    top = os.path.dirname(containment.leaf) if containment.leaf is not None else containment.root
    folder = top
    for part in [None, *os.path.relpath(containment.project, top).split(os.sep)]:
        folder = folder if part is None else _child(folder, part)
        offered = _readable_list(_child(folder, "cgroup.controllers"))
        problem = _enable(folder, [name for name in LIMIT_CONTROLLERS if name in offered])
        if problem:
            problems.append(problem)
    enabled = _readable_list(_child(containment.project, "cgroup.subtree_control"))
    controllers = tuple(name for name in LIMIT_CONTROLLERS if name in enabled)
    note = "; ".join(problems) or _missing_note(top, controllers)
    return Containment("cgroup", root=containment.root, project=containment.project,
                       leaf=containment.leaf, controllers=controllers, note=note)


def remove_stale(containment: Containment, in_flight: set[str] | frozenset[str],
                 timeout: float = KILL_TIMEOUT) -> list[str]:
    """Kill and remove this project's run cgroups whose runs are not in flight; their names."""
    if containment.project is None or not os.path.isdir(containment.project):
        return []
    removed = []
    for entry in os.scandir(containment.project):
        stale = entry.is_dir(follow_symlinks=False) and entry.name not in in_flight
        if stale and kill_all(entry.path, timeout).removed:
            removed.append(entry.name)
    return removed


# -- cgroups -----------------------------------------------------------------------------------


def _folders(cgroup: str) -> Iterator[str]:
    """``cgroup`` and the cgroups a run made inside it, deepest first."""
    for folder, _, _ in os.walk(cgroup, topdown=False):
        yield folder


def create_run_cgroup(cgroup: str, limits: Mapping[str, str] | None = None) -> list[str]:
    """Make a run's cgroup and apply the ``limits`` (``memory.max``, ``pids.max``, ...) the
    enabled controllers allow; returns a note for each limit that could not be set."""
    if not _NAME.fullmatch(os.path.basename(cgroup)):
        raise ValueError(f"not a run cgroup name: {os.path.basename(cgroup)!r}")
    os.mkdir(cgroup)
    skipped = []
    for name, value in (limits or {}).items():
        try:
            _write(_child(cgroup, name), str(value))
        except OSError as error:
            skipped.append(f"{name}={value}: {error.strerror}")
    return skipped


def spawn_in(cgroup: str, argv: Sequence[str], env: Mapping[str, str], **spawn: Any) -> int:
    """``os.posix_spawnp`` with the child inside ``cgroup`` before it execs anything.

    posix_spawn has no pre-exec hook, so the (single-threaded) caller moves itself into the
    cgroup, spawns (the child inherits it) and moves back. Measured with
    ``tests/containment_bench.py``: 0.3-0.4 ms more than a plain spawn (0.8 ms), where fork,
    a write to ``cgroup.procs`` in the child and exec take 2.2-2.5 ms from Python. A
    multi-threaded caller would take its other threads along while it is inside.
    """
    home = _own_cgroup()
    if home is None:
        raise OSError(errno.ENOENT, "this process is in no cgroup2 hierarchy")
    mount = _project_mount(os.path.dirname(cgroup))
    if mount is None:
        raise OSError(errno.EINVAL, "not in a cgroup2 mount", cgroup)
    home_procs = _child(os.path.join(mount.point, os.path.relpath(home, mount.root)),
                        "cgroup.procs")
    me = str(os.getpid())
    _write(_child(cgroup, "cgroup.procs"), me)
    try:
        pid = os.posix_spawnp(argv[0], list(argv), env, **spawn)
    finally:
        try:
            _write(home_procs, me)
        except OSError as error:  # never stay inside: the run's kill would take this one along
            os.write(2, f"containment: cannot leave {cgroup} ({error.strerror}); exiting\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
    return pid


def cgroup_members(cgroup: str) -> list[int]:
    """The processes in ``cgroup`` and below; [] when it is gone."""
    pids = []
    with contextlib.suppress(FileNotFoundError):
        for folder in _folders(cgroup):
            with contextlib.suppress(FileNotFoundError):
                pids += [int(pid) for pid in _read(_child(folder, "cgroup.procs")).split()]
    return pids


def populated(cgroup: str) -> bool:
    """Whether any process is left in ``cgroup`` or below (False when it is gone)."""
    try:
        return "populated 1" in _read(_child(cgroup, "cgroup.events"))
    except FileNotFoundError:
        return False


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _send(pidfd: int, signum: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_all(cgroup: str, signum: int, timeout: float = 1.0) -> int:
    """Send ``signum`` once to every process in ``cgroup``, including ones forked meanwhile
    (until ``timeout``); how many got it. Each is held by a pidfd and checked as a member, so a
    reused pid is safe. SIGKILL goes through ``cgroup.kill``: atomic, forks included."""
    if signum == signal.SIGKILL:
        members = cgroup_members(cgroup)
        _write(_child(cgroup, "cgroup.kill"), "1")
        return len(members)
    hierarchy = _hierarchy_path(cgroup)
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    sent = 0
    while time.monotonic() < deadline:
        fresh = [pid for pid in cgroup_members(cgroup) if pid not in seen]
        if not fresh:
            break
        for pid in fresh:
            seen.add(pid)
            pidfd = _pidfd(pid)
            if pidfd is None:
                continue
            try:
                path = _own_cgroup(pid)
                if path is not None and (path == hierarchy or path.startswith(hierarchy + "/")):
                    sent += _send(pidfd, signum)
            finally:
                os.close(pidfd)
    return sent


def _wait_empty(cgroup: str, deadline: float) -> bool:
    """Wait until ``cgroup`` holds no process (or is gone), or until ``deadline``."""
    try:
        fd = os.open(_child(cgroup, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        watch = select.poll()
        watch.register(fd, select.POLLPRI)  # kernfs flags a changed file with POLLPRI|POLLERR
        while True:
            if b"populated 0" in os.pread(fd, 4096, 0):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            watch.poll(max(1, int(left * 1000)))
    finally:
        os.close(fd)


def _stat_fields(path: str) -> dict[str, int]:
    try:
        with open(path, encoding="ascii") as file:
            return {key: int(value) for key, value in (line.split() for line in file)}
    except (OSError, ValueError):
        return {}


def cgroup_usage(cgroup: str) -> Usage:
    """CPU (``cpu.stat``, there without the cpu controller), peak memory and OOM kills
    (``memory.peak``, ``memory.events``: only with the memory controller) of a run."""
    cpu = _stat_fields(_child(cgroup, "cpu.stat")).get("usage_usec")
    try:
        peak: int | None = int(_read(_child(cgroup, "memory.peak")))
    except (OSError, ValueError):
        peak = None
    oom = _stat_fields(_child(cgroup, "memory.events")).get("oom_kill")
    note = "" if peak is not None else "no memory.peak: memory controller not enabled for runs"
    return Usage(None if cpu is None else cpu / 1e6, peak, oom, approximate=False, note=note)


@dataclass(frozen=True)
class KillResult:
    left: tuple[int, ...]  # processes still there at the deadline
    removed: bool


def _kill(cgroup: str, deadline: float) -> bool:
    """SIGKILL everything in ``cgroup`` and wait until it is empty; False at the deadline."""
    try:
        _write(_child(cgroup, "cgroup.kill"), "1")
    except FileNotFoundError:
        if os.path.isdir(cgroup):
            raise
        return True
    return _wait_empty(cgroup, deadline)


def _remove(cgroup: str, deadline: float) -> KillResult:
    """Remove the (emptied) ``cgroup`` and the cgroups a run made inside it."""
    for folder in _folders(cgroup):
        while True:
            try:
                os.rmdir(folder)
                break
            except FileNotFoundError:
                break
            except OSError as error:  # EBUSY: the last member is still leaving
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    return KillResult(tuple(cgroup_members(cgroup)), False)
                time.sleep(_ROUND)
    return KillResult((), True)


def kill_all(cgroup: str, timeout: float = KILL_TIMEOUT) -> KillResult:
    """SIGKILL everything in ``cgroup`` (``cgroup.kill``), wait until it is empty and remove it;
    after ``timeout`` seconds gives up and says which processes are left."""
    deadline = time.monotonic() + timeout
    if not _kill(cgroup, deadline):
        return KillResult(tuple(cgroup_members(cgroup)), False)
    return _remove(cgroup, deadline)


# -- the sweep ---------------------------------------------------------------------------------


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        return _read_all(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _is_member(pid: int, needle: bytes, uid: int, session: int | None) -> bool:
    try:
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return False
        fields = _proc_stat(pid)
        if fields is None or fields[0] == b"Z":
            return False
        if session is not None and int(fields[3]) == session:
            return True
        return needle in _read_all(f"/proc/{pid}/environ").split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def sweep_members(run_id: str, session: int | None = None) -> list[int]:
    """This user's live processes carrying ``STARFORGE_RUN_ID=<run_id>`` or, given the run's
    first pid, in its session (a session id stays reserved while any process uses it)."""
    needle = f"{RUN_ID_ENV}={run_id}".encode()
    uid, me = os.geteuid(), os.getpid()
    return [pid for pid in (int(name) for name in os.listdir("/proc") if name.isdigit())
            if pid != me and _is_member(pid, needle, uid, session)]


def sweep_signal(run_id: str, signum: int, session: int | None = None) -> int:
    """Send ``signum`` once to each process of the run; how many got it."""
    needle = f"{RUN_ID_ENV}={run_id}".encode()
    uid = os.geteuid()
    sent = 0
    for pid in sweep_members(run_id, session):
        pidfd = _pidfd(pid)
        if pidfd is None:
            continue
        try:  # checked again through the pidfd: the pid may have been reused meanwhile
            if _is_member(pid, needle, uid, session) and _send(pidfd, signum):
                sent += 1
        finally:
            os.close(pidfd)
    return sent


def sweep_kill(run_id: str, session: int | None = None, timeout: float = KILL_TIMEOUT) -> tuple[int, ...]:
    """SIGKILL the run's processes, again and again while any is left (they may fork while
    being killed) until ``timeout``; the ones left then."""
    deadline = time.monotonic() + timeout
    while True:
        if not sweep_signal(run_id, signal.SIGKILL, session) and not sweep_members(run_id, session):
            return ()
        if time.monotonic() > deadline:
            return tuple(sweep_members(run_id, session))
        time.sleep(_ROUND)


def _peak_rss(pid: int) -> int | None:
    try:
        for line in _read_all(f"/proc/{pid}/status").splitlines():
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def sweep_usage(pids: Sequence[int], rusage: struct_rusage | None = None) -> Usage:
    """Approximate usage without a cgroup: the run's first process and the children it waited
    for (``rusage`` from ``os.wait4``) plus the processes ``pids`` as they are now. What other
    processes of the run spent before they exited is missed; ``ru_maxrss`` includes the
    spawner's resident size at exec (posix_spawn shares its memory until then)."""
    cpu = 0.0 if rusage is None else rusage.ru_utime + rusage.ru_stime
    peak = None if rusage is None else rusage.ru_maxrss * 1024
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            cpu += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        rss = _peak_rss(pid)
        if rss is not None:
            peak = rss if peak is None else max(peak, rss)
    return Usage(cpu, peak, None, approximate=True,
                 note="sampled: first process and its reaped children, plus processes left at the end")


# -- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunContainer:
    """One run's container: its cgroup, or (``cgroup`` None) the sweep by its run id.

    ``session`` is the run's first pid (spawned with ``setsid``): the sweep also takes the
    processes of that session.
    """

    run_id: str
    cgroup: str | None = None

    def create(self, limits: Mapping[str, str] | None = None) -> list[str]:
        """Make the run's cgroup (nothing to do for a sweep); notes on limits not set."""
        if self.cgroup is None:
            return [f"{name}={value}: no cgroup" for name, value in (limits or {}).items()]
        return create_run_cgroup(self.cgroup, limits)

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], **spawn: Any) -> int:
        """Start the run's first process (``os.posix_spawnp`` arguments) in the container."""
        if self.cgroup is None:
            return os.posix_spawnp(argv[0], list(argv), env, **spawn)
        return spawn_in(self.cgroup, argv, env, **spawn)

    def members(self, session: int | None = None) -> list[int]:
        if self.cgroup is None:
            return sweep_members(self.run_id, session)
        return cgroup_members(self.cgroup)

    def signal(self, signum: int, session: int | None = None) -> int:
        """Send ``signum`` to every process of the run (the graceful stop)."""
        if self.cgroup is None:
            return sweep_signal(self.run_id, signum, session)
        return signal_all(self.cgroup, signum) if os.path.isdir(self.cgroup) else 0

    def end(self, session: int | None = None, rusage: struct_rusage | None = None,
            timeout: float = KILL_TIMEOUT) -> RunEnd:
        """Kill whatever is left of the run, account for it and remove its cgroup."""
        if self.cgroup is None:
            usage = sweep_usage(sweep_members(self.run_id, session), rusage)
            return RunEnd(usage, sweep_kill(self.run_id, session, timeout), True)
        if not os.path.isdir(self.cgroup):
            return RunEnd(Usage(None, None, None, False, "the run's cgroup was gone"), (), True)
        deadline = time.monotonic() + timeout
        if not _kill(self.cgroup, deadline):
            return RunEnd(cgroup_usage(self.cgroup), tuple(cgroup_members(self.cgroup)), False)
        usage = cgroup_usage(self.cgroup)  # after the last member died, before the removal
        result = _remove(self.cgroup, deadline)
        return RunEnd(usage, result.left, result.removed)
