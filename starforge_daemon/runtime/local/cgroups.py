"""cgroup v2 for one run: the mounts and paths, the run's cgroup made, entered by its first
process, signalled, accounted for, killed and removed. Standard library only (see
``containment``)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import select
import signal
import time
from collections.abc import Iterator, Mapping
from typing import NamedTuple

if __package__:
    from . import processes
else:  # beside keeper.py, run as a script (python3 -I -S): plain sibling modules
    import processes

_CGROUP2 = "cgroup2"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Mount(NamedTuple):
    point: str
    root: str  # the hierarchy path mounted at ``point``
    fstype: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mounts() -> list[Mount]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as file:
        for line in file:
            fields = line.split()
            after = fields.index("-")
            mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]), fields[after + 1]))
    return mounts


def cgroup2_mount(path: str) -> Mount | None:
    """The cgroup2 mount ``path`` lies in, when the mount that holds it is one."""
    real = os.path.realpath(path)
    holding = [mount for mount in mounts()
               if real == mount.point or real.startswith(mount.point.rstrip("/") + "/")]
    if not holding:
        return None
    mount = max(holding, key=lambda mount: len(mount.point))
    return mount if mount.fstype == _CGROUP2 else None


@functools.lru_cache(maxsize=16)
def project_mount(project: str) -> Mount | None:
    """The mount of a project's folder, looked up once: a spawn costs 0.1 ms less."""
    return cgroup2_mount(project)


def _hierarchy_path(path: str) -> str:
    """``path`` as /proc/<pid>/cgroup names it."""
    mount = cgroup2_mount(path)
    if mount is None:
        raise OSError(errno.EINVAL, "not in a cgroup2 mount", path)
    relative = os.path.relpath(os.path.realpath(path), mount.point)
    return os.path.normpath(os.path.join(mount.root, "" if relative == "." else relative))


def own_cgroup(pid: int | str = "self") -> str | None:
    """The cgroup2 path of a process, as in /proc/<pid>/cgroup (``0::/path``)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="surrogateescape") as file:
            for line in file:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n").removesuffix(" (deleted)")
    except OSError:
        return None
    return None


def own_cgroup_dir() -> str | None:
    """This process's cgroup as a folder, through a cgroup2 mount that shows it."""
    path = own_cgroup()
    if path is None:
        return None
    for mount in mounts():
        if mount.fstype != _CGROUP2:
            continue
        if path == mount.root or path.startswith(mount.root.rstrip("/") + "/"):
            return os.path.normpath(os.path.join(mount.point, os.path.relpath(path, mount.root)))
    return None


def write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read(path: str) -> str:
    return processes.read_bytes(path).decode("ascii")


def child(folder: str, name: str) -> str:
    return os.path.join(folder, name)


def read_words(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="ascii") as file:
            return tuple(file.read().split())
    except OSError:
        return ()


def _folders(cgroup: str) -> Iterator[str]:
    """``cgroup`` and the cgroups a run made inside it, deepest first."""
    for folder, _, _ in os.walk(cgroup, topdown=False):
        yield folder


def create_run_cgroup(cgroup: str, limits: Mapping[str, str] | None = None, *,
                      exist_ok: bool = False) -> list[str]:
    """Make a run's cgroup (``exist_ok``: or take the one there) and apply the ``limits``
    (``memory.max``, ``pids.max``, ...) the enabled controllers allow; returns a note for each
    limit that could not be set."""
    if not _NAME.fullmatch(os.path.basename(cgroup)):
        raise ValueError(f"not a run cgroup name: {os.path.basename(cgroup)!r}")
    try:
        os.mkdir(cgroup)
    except FileExistsError:
        if not exist_ok:
            raise
    skipped = []
    for name, value in (limits or {}).items():
        try:
            write(child(cgroup, name), str(value))
        except OSError as error:
            skipped.append(f"{name}={value}: {error.strerror}")
    return skipped


class HeldFiles:
    """The files of a cgroup that every run uses, opened once: an open in cgroupfs costs more
    than the read or write after it, and an agent's shared cgroup serves run after run. Reads
    re-read from the start (``pread``)."""

    def __init__(self, cgroup: str) -> None:
        self.procs = os.open(child(cgroup, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        self.events = os.open(child(cgroup, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
        self.stat = os.open(child(cgroup, "cpu.stat"), os.O_RDONLY | os.O_CLOEXEC)
        self.folder = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.clone_refused = False  # clone3 into it killed a child at birth (cgroup_spawn)

    def close(self) -> None:
        for fd in (self.procs, self.events, self.stat, self.folder):
            os.close(fd)


def cgroup_members(cgroup: str) -> list[int]:
    """The processes in ``cgroup`` and below; [] when it is gone."""
    pids = []
    with contextlib.suppress(FileNotFoundError):
        for folder in _folders(cgroup):
            with contextlib.suppress(FileNotFoundError):
                pids += [int(pid) for pid in read(child(folder, "cgroup.procs")).split()]
    return pids


def populated(cgroup: str, held: HeldFiles | None = None) -> bool:
    """Whether any process is left in ``cgroup`` or below (False when it is gone)."""
    if held is not None:
        return b"populated 1" in os.pread(held.events, 4096, 0)
    try:
        return "populated 1" in read(child(cgroup, "cgroup.events"))
    except FileNotFoundError:
        return False


def signal_all(cgroup: str, signum: int, timeout: float = 1.0) -> int:
    """Send ``signum`` once to every process in ``cgroup``, including ones forked meanwhile
    (until ``timeout``); how many got it. Each is held by a pidfd and checked as a member, so a
    reused pid is safe. SIGKILL goes through ``cgroup.kill``: atomic, forks included."""
    if signum == signal.SIGKILL:
        members = cgroup_members(cgroup)
        write(child(cgroup, "cgroup.kill"), "1")
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
            pidfd = processes.pidfd_of(pid)
            if pidfd is None:
                continue
            try:
                path = own_cgroup(pid)
                if path is not None and (path == hierarchy or path.startswith(hierarchy + "/")):
                    sent += processes.send(pidfd, signum)
            finally:
                os.close(pidfd)
    return sent


def _wait_empty(cgroup: str, deadline: float) -> bool:
    """Wait until ``cgroup`` holds no process (or is gone), or until ``deadline``."""
    try:
        fd = os.open(child(cgroup, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
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


def _stat_fields(path: str, fd: int | None = None) -> dict[str, int]:
    try:
        text = read(path) if fd is None else os.pread(fd, 4096, 0).decode("ascii")
        return {key: int(value) for key, value in (line.split() for line in text.splitlines())}
    except (OSError, ValueError):
        return {}


def cgroup_usage(cgroup: str, memory: bool = True, held: HeldFiles | None = None,
                 ) -> processes.Usage:
    """CPU (``cpu.stat``, there without the cpu controller), peak memory and OOM kills
    (``memory.peak``, ``memory.events``: only with the memory controller, not looked for
    without ``memory``) of a run."""
    cpu = _stat_fields(child(cgroup, "cpu.stat"), None if held is None else held.stat).get("usage_usec")
    if not memory:
        return processes.Usage(None if cpu is None else cpu / 1e6, None, None, approximate=False,
                               note="no memory.peak: memory controller not enabled for runs")
    try:
        peak: int | None = int(read(child(cgroup, "memory.peak")))
    except (OSError, ValueError):
        peak = None
    oom = _stat_fields(child(cgroup, "memory.events")).get("oom_kill")
    note = "" if peak is not None else "no memory.peak: memory controller not enabled for runs"
    return processes.Usage(None if cpu is None else cpu / 1e6, peak, oom, approximate=False, note=note)


class KillResult(NamedTuple):
    left: tuple[int, ...]  # processes still there at the deadline
    removed: bool


def kill_members(cgroup: str, deadline: float) -> bool:
    """SIGKILL everything in ``cgroup`` and wait until it is empty; False at the deadline."""
    try:
        write(child(cgroup, "cgroup.kill"), "1")
    except FileNotFoundError:
        if os.path.isdir(cgroup):
            raise
        return True
    return _wait_empty(cgroup, deadline)


def remove_emptied(cgroup: str, deadline: float) -> KillResult:
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
                time.sleep(processes.ROUND)
    return KillResult((), True)


def kill_all(cgroup: str, timeout: float = processes.KILL_TIMEOUT) -> KillResult:
    """SIGKILL everything in ``cgroup`` (``cgroup.kill``), wait until it is empty and remove it;
    after ``timeout`` seconds gives up and says which processes are left."""
    deadline = time.monotonic() + timeout
    if not kill_members(cgroup, deadline):
        return KillResult(tuple(cgroup_members(cgroup)), False)
    return remove_emptied(cgroup, deadline)
