"""One daemon per project: an exclusive lock that dies with its holder, and the pid file."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from starforge_daemon.store.paths import ProjectPaths

# A foreground daemon that handed its agents over (SIGUSR1) exits with this status, so that
# systemd (RestartForceExitStatus=) starts the next daemon at once to adopt them.
HANDOFF_EXIT_STATUS = 75
LOCK_POLL = 0.01


def flock_within(fd: int, patience: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, trying again for up to ``patience`` seconds;
    whether it was taken. flock has no timeout and gives nothing to wait on, hence the polling."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL)


class InstanceLock:
    """An exclusive ``flock`` on ``daemon.lock``: held while the daemon lives, gone with it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self, patience: float = 0.25) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not flock_within(fd, patience):  # a status probe may hold it for a moment
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_is_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_pid(paths: ProjectPaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(paths: ProjectPaths) -> int | None:
    """The pid of this project's live daemon, or None. The lock decides; the pid file names."""
    if not lock_is_held(paths.lock_file):
        return None
    return read_pid(paths)
