"""Starting the project's keeper, and its first word on a new connection."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from starforge_daemon.runtime.api import RunnerError
from starforge_daemon.runtime.local import keeper, processes

KEEPER_START_TIMEOUT = 10.0
KEEPER_EXIT_WAIT = 5.0  # a keeper with no run left exits at once, its reaper right after it
KEEPER = Path(keeper.__file__)


def start_keeper(socket_path: Path, keeper_log: Path, runs: Path) -> subprocess.Popen[bytes]:
    """A new keeper listening on ``socket_path`` (none listens there now), once it says so."""
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # nobody listens on it
    log = os.open(keeper_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(KEEPER), str(socket_path), str(runs)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, cwd="/")
    finally:
        os.close(log)
    assert process.stdout is not None
    with process.stdout:
        ready = selectors.DefaultSelector()
        ready.register(process.stdout, selectors.EVENT_READ)
        if not ready.select(KEEPER_START_TIMEOUT) or not process.stdout.readline():
            process.kill()
            process.wait()
            raise RunnerError(f"the keeper did not start (see {keeper_log})")
        ready.close()
    return process


def await_hello(channel: keeper.Channel) -> list[dict[str, Any]]:
    """The hello and whatever came with it; empty when the keeper closed on us."""
    deadline = time.monotonic() + KEEPER_START_TIMEOUT
    waiting = selectors.DefaultSelector()
    waiting.register(channel.sock, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            waiting.select(deadline - time.monotonic())
            messages, closed = channel.receive()
            if messages or closed:
                return messages
    finally:
        waiting.close()
    return []


def keeper_processes(keeper_pid: int) -> list[int]:
    """The keeper and the reaper above it (its parent, running the same program), if alive."""
    try:
        parent = int(processes.stat_fields(keeper_pid)[1])
        program = processes.read_bytes(f"/proc/{keeper_pid}/cmdline")
    except (OSError, ValueError, IndexError):
        return []
    try:
        same = processes.read_bytes(f"/proc/{parent}/cmdline") == program
    except OSError:
        same = False
    return [keeper_pid, parent] if same else [keeper_pid]


def wait_gone(pids: list[int], timeout: float) -> None:
    """Until every one of ``pids`` has exited, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        processes.wait_for_exit(pid, deadline - time.monotonic())
