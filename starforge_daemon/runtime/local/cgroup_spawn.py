"""A run's first process spawned inside its cgroup, before it execs anything. Standard library
only (see ``containment``), but for the optional C extension ``_clone_spawn``.

Where the extension is built, ``clone3(CLONE_INTO_CGROUP)`` creates the child in the cgroup.
Otherwise the (single-threaded) spawner moves itself into the cgroup, spawns (the child inherits
it) and moves back: two writes to ``cgroup.procs``, about 25 µs of CPU
(``bench/containment_cost.py``), but on a kernel whose cgroup2 mount lacks ``favordynmods``
the first write after a quiet spell waits for an RCU grace period (6 to 9 ms measured here),
which every live trigger met. A multi-threaded spawner would take its other threads along
while it is inside.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

if __package__:
    from . import cgroups, processes
else:  # beside keeper.py, run as a script (python3 -I -S): plain sibling modules
    import cgroups
    import processes

try:
    if __package__:
        from . import _clone_spawn
    else:
        import _clone_spawn
except ImportError:  # built only where a C compiler was found at install
    _clone_spawn = None

# clone3 itself refused: a kernel before 5.7 (E2BIG: no cgroup field), or a seccomp filter
# that hides clone3 (ENOSYS, as container runtimes do)
_NO_CLONE3 = (errno.ENOSYS, errno.E2BIG)
_native_refused: list[int] = []  # the kernel's refusal of clone3, once seen


def spawn_in(cgroup: str, argv: Sequence[str], env: Mapping[str, str],
             held: cgroups.HeldFiles | None = None, **spawn: Any) -> int:
    """``processes.spawn_program`` with the child inside ``cgroup`` from its start.

    A held cgroup whose clone refused a child (its ``cgroup.kill`` was written before: see
    ``_clone_spawn.c``) is entered by migration from then on; the keeper makes an agent's
    cgroup anew after killing in it, with new held files."""
    if native_spawn_usable() and not (held is not None and held.clone_refused):
        folder = held.folder if held is not None else os.open(
            cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return processes.spawn_program(
                list(argv), env, functools.partial(_clone_spawn.spawn, cgroup=folder), **spawn)
        except OSError as error:
            if error.filename is not None:
                raise
            if error.errno == errno.ECANCELED:
                if held is not None:
                    held.clone_refused = True
            elif error.errno in _NO_CLONE3:
                _native_refused.append(error.errno)
            else:
                raise
        finally:
            if held is None:
                os.close(folder)
    return spawn_by_migration(cgroup, argv, env, held, **spawn)


def native_spawn_usable() -> bool:
    """Whether spawns go straight into their cgroup (the extension built, clone3 not refused)."""
    return _clone_spawn is not None and not _native_refused


def spawn_by_migration(cgroup: str, argv: Sequence[str], env: Mapping[str, str],
                       held: cgroups.HeldFiles | None = None, **spawn: Any) -> int:
    """``spawn_in`` by moving in and out (where clone3 cannot place the child)."""
    home_procs = _home_procs(os.path.dirname(cgroup), _own_cgroup_of(os.getpid()))
    me = str(os.getpid()).encode()
    if held is None:
        cgroups.write(cgroups.child(cgroup, "cgroup.procs"), me.decode())
    else:
        os.write(held.procs, me)
    try:
        return processes.spawn_program(list(argv), env, **spawn)
    finally:
        try:
            os.write(home_procs, me)
        except OSError as error:  # never stay inside: the run's kill would take this one along
            os.write(2, f"containment: cannot leave {cgroup} ({error.strerror}); exiting\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)


@functools.lru_cache(maxsize=4)
def _own_cgroup_of(pid: int) -> str | None:
    """This process's cgroup, read once: a spawner moves only in and back out (by pid, so a
    forked child reads its own)."""
    return cgroups.own_cgroup(pid)


@functools.lru_cache(maxsize=16)
def _home_procs(project: str, home: str | None) -> int:
    """The ``cgroup.procs`` file of the caller's own cgroup ``home``, seen through the mount
    that holds ``project``, opened for writing once per place (and kept open)."""
    if home is None:
        raise OSError(errno.ENOENT, "this process is in no cgroup2 hierarchy")
    mount = cgroups.project_mount(project)
    if mount is None:
        raise OSError(errno.EINVAL, "not in a cgroup2 mount", project)
    path = cgroups.child(os.path.join(mount.point, os.path.relpath(home, mount.root)),
                         "cgroup.procs")
    return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
