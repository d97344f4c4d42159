"""What common agent CLIs do with SIGINT and SIGTERM while they wait on their model.

    python3 bench/agent_signals.py [TRIES]     (needs a writable cgroup2 hierarchy: root here)

Each CLI runs in a cgroup of its own (the daemon's containment, ``RunContainer``) against a
loopback HTTP server that accepts its model request and never answers, so the CLI is waiting
on the model. Once the request has arrived, the signal goes to every process of the run, as
``AGENT_STOP_SIGNAL`` does. Recorded per signal: the first process's exit status, the time from
the signal to its exit, the processes of the run still there at that moment (what only the
container's SIGKILL ends), and model requests after the signal. Missing CLIs are listed, not
measured. As root, Claude Code needs ``IS_SANDBOX=1`` for its bypass flag: set here, for the
bench only.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scratch_cgroup import containment, scratch_containment

EXIT_WAIT = 10.0  # seconds a CLI gets to exit after the signal before SIGKILL
REQUEST_WAIT = 60.0
PROMPT = "say hello"


class HangingApi:
    """Loopback HTTP server that reads requests and never answers; counts their arrivals."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.arrivals: list[float] = []
        self._arrived = threading.Condition()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        seen = b""
        while b"\r\n\r\n" not in seen:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk
        if seen.split(b" ", 1)[0] == b"POST":  # model requests, not probes of other endpoints
            with self._arrived:
                self.arrivals.append(time.monotonic())
                self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.arrivals) >= count, timeout)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


@dataclass(frozen=True)
class Cli:
    name: str
    program: str
    argv: Callable[[str, int], list[str]]  # from the work folder and the server's port
    env: Callable[[int], dict[str, str]]  # from the server's port
    version: list[str]


def _claude_env(port: int) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "bench",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "IS_SANDBOX": "1"}


def _codex_env(_: int) -> dict[str, str]:
    return {"OPENAI_API_KEY": "bench"}


def _codex_provider(port: int) -> str:
    """codex reads no base URL from its environment: a provider of its own points it here."""
    return (f'model_providers.bench={{name="bench",base_url="http://127.0.0.1:{port}/v1",'
            'env_key="OPENAI_API_KEY",wire_api="responses"}')


def _gemini_env(port: int) -> dict[str, str]:
    return {"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}", "GEMINI_API_KEY": "bench",
            "GEMINI_CLI_TRUST_WORKSPACE": "true"}


# gemini asks which way to authenticate unless its settings say
GEMINI_SETTINGS = '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'


def _python_env(port: int) -> dict[str, str]:
    return {"MODEL_API": f"http://127.0.0.1:{port}/v1/messages"}


PYTHON_AGENT = ("import os, urllib.request; urllib.request.urlopen(urllib.request.Request("
                "os.environ['MODEL_API'], data=b'{}'))")


CLIS = (
    Cli("Claude Code", "claude",
        lambda _, __: ["claude", "--print", "--permission-mode", "bypassPermissions",
                   "--output-format", "stream-json", "--verbose", PROMPT],
        _claude_env, ["claude", "--version"]),
    Cli("Codex CLI", "codex",
        lambda work, port: ["codex", "exec", "--json", "--skip-git-repo-check", "-C", work,
                            "-c", "model_provider=bench", "-c", _codex_provider(port), PROMPT],
        _codex_env, ["codex", "--version"]),
    Cli("Gemini CLI", "gemini",
        lambda _, __: ["gemini", "--output-format", "stream-json", "--yolo", "-p", PROMPT],
        _gemini_env, ["gemini", "--version"]),
    Cli("a Python agent (urllib)", "python3", lambda _, __: ["python3", "-c", PYTHON_AGENT],
        _python_env, ["python3", "--version"]),
)


@dataclass(frozen=True)
class Try:
    exit_status: int | None  # None: still running after EXIT_WAIT (then SIGKILLed)
    seconds: float
    left: int
    later_requests: int


def _version(cli: Cli) -> str:
    try:
        done = subprocess.run(cli.version, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[0] if lines else "?"


def _one_try(found: containment.Containment, cli: Cli, signum: int, home: str) -> Try:
    api = HangingApi()
    container = found.run(f"bench-{uuid.uuid4().hex[:12]}")
    container.create()
    work = tempfile.mkdtemp(prefix="agent-signals-")
    env = {"PATH": os.environ["PATH"], "HOME": home, "TERM": "dumb", **cli.env(api.port)}
    devnull = os.open(os.devnull, os.O_RDWR)
    pid = None
    try:
        os.chdir(work)
        pid = container.spawn(cli.argv(work, api.port), env, setsid=True,
                              file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                            (os.POSIX_SPAWN_DUP2, devnull, 1),
                                            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        pidfd = os.pidfd_open(pid)
        if not api.wait_for(1, REQUEST_WAIT):
            raise RuntimeError(f"{cli.name} sent no model request in {REQUEST_WAIT:.0f} s")
        sent_at = time.monotonic()
        requests = len(api.arrivals)
        container.signal(signum, session=pid)
        exited = _exits_within(pidfd, EXIT_WAIT)
        seconds = time.monotonic() - sent_at
        left = len([member for member in container.members(pid) if member != pid])
        os.close(pidfd)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if exited else None
        if exited:
            pid = None
        return Try(status, seconds, left, len(api.arrivals) - requests)
    finally:
        os.chdir("/")
        os.close(devnull)
        end = container.end()  # SIGKILL of what is left, and the cgroup removed
        if end.left:
            print(f"warning: {cli.name}: {len(end.left)} processes outlived the bench",
                  file=sys.stderr)
        if pid is not None:  # still running at the deadline: killed with the container
            os.waitpid(pid, 0)
        api.close()
        shutil.rmtree(work, ignore_errors=True)


def _exits_within(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


def _cell(tries: list[Try]) -> list[str]:
    statuses = sorted({"still running" if one.exit_status is None else str(one.exit_status)
                       for one in tries})
    exited = [one.seconds for one in tries if one.exit_status is not None]
    seconds = f"{statistics.median(exited):.2f} s" if exited else "-"
    return [", ".join(statuses), seconds, str(max(one.left for one in tries)),
            str(max(one.later_requests for one in tries))]


def main(tries: int) -> None:
    home = tempfile.mkdtemp(prefix="agent-signals-home-")
    os.mkdir(os.path.join(home, ".gemini"))
    Path(home, ".gemini", "settings.json").write_text(GEMINI_SETTINGS)
    rows, missing = [], []
    with scratch_containment("signals") as found:
        for cli in CLIS:
            if shutil.which(cli.program) is None:
                missing.append(cli.program)
                continue
            version = _version(cli)
            for signum in (signal.SIGINT, signal.SIGTERM):
                measured = [_one_try(found, cli, signum, home) for _ in range(tries)]
                rows.append([f"{cli.name} {version}", signum.name, *_cell(measured)])
    shutil.rmtree(home, ignore_errors=True)
    print(f"{tries} tries per CLI and signal, the CLI waiting on its model request; "
          f"{found.text}\n")
    print("| CLI | signal | exit status | signal to exit (median) | processes left at exit "
          "(most) | model requests after the signal (most) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if missing:
        print(f"\nnot installed, not measured: {', '.join(missing)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
