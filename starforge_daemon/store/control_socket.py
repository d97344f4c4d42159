"""The operator channel: a Unix socket at ``.claude/daemon/control.sock``.

One JSON object per line each way: a connection sends one request
(``{"op": "pause", "agent": "junior-dev-a"}``) and reads one answer (``{"ok": true, ...}``).
The daemon's side runs on its own thread, which only hands each request to the engine's loop
and waits for the loop's answer; the client side is :func:`request`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST = 64 * 1024
ANSWER_TIMEOUT = 15.0

Reply = Callable[[dict[str, Any]], None]


class ControlError(Exception):
    """The daemon could not be asked (not running) or did not answer."""


class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket."""


def _read_line(sock: socket.socket, limit: int) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def request(path: Path, message: dict[str, Any], timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
    """Ask the running daemon; raises :class:`ControlError` when none answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except PermissionError:
            raise ControlError(f"no permission to use {path} (the daemon runs as another "
                               "user)") from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning("the daemon is not running (start it with "
                                   "`starforge daemon start`)") from None
        except OSError as error:  # a path too long for a socket, say
            raise ControlError(f"cannot reach the daemon at {path}: "
                               f"{error.strerror or error}") from None
        try:
            sock.sendall(json.dumps(message).encode() + b"\n")
            answer = _read_line(sock, 1 << 20)
        except TimeoutError:
            raise ControlError(f"the daemon did not answer within {timeout:g}s") from None
        except OSError as error:
            raise ControlError(f"cannot talk to the daemon through {path}: "
                               f"{error.strerror or error}") from None
    if not answer:
        raise ControlError("the daemon closed the connection without answering (stopping?)")
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise ControlError(f"the daemon's answer is not a JSON object: {answer[:80]!r}")
    return reply


class ControlServer:
    def __init__(self, path: Path, submit: Callable[[dict[str, Any], Reply], None]) -> None:
        self._path = path
        self._submit = submit
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._stop_read, self._stop_write = os.pipe()
        self._stopping = threading.Event()
        self._waiting: set[threading.Event] = set()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # we hold the instance lock: any socket here is stale
        private = os.umask(0o177)  # only the daemon's user may steer it
        try:
            self._listener.bind(str(self._path))
        finally:
            os.umask(private)
        self._listener.listen(16)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for answered in list(self._waiting):
            answered.set()  # the loop will not answer any more
        os.write(self._stop_write, b"\0")
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        os.close(self._stop_read)
        os.close(self._stop_write)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._stop_read], [], [])
            if self._stop_read in ready:
                return
            connection, _ = self._listener.accept()
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            message = json.loads(_read_line(connection, MAX_REQUEST))
            if not isinstance(message, dict):
                raise ValueError("a request is a JSON object")
        except (OSError, ValueError) as error:
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps({"ok": False, "error": str(error)}).encode() + b"\n")
            return
        answered = threading.Event()
        answer: dict[str, Any] = {}

        def reply(result: dict[str, Any]) -> None:
            answer.update(result)
            answered.set()

        self._waiting.add(answered)
        if not self._stopping.is_set():
            self._submit(message, reply)
            answered.wait(ANSWER_TIMEOUT)
        self._waiting.discard(answered)
        result = answer or {"ok": False, "error": "the daemon is stopping"}
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps(result).encode() + b"\n")
