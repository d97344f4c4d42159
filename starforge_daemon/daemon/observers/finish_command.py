"""``ON_FINISH_COMMAND``: run after each archived trigger's run, from a thread of its own, without
a shell, for at most FINISH_TIMEOUT seconds (then its whole process group is killed). Its
failures are reported like a notification target's (:class:`Health`)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from starforge_daemon.core.command import render_argv
from starforge_daemon.core.events import Archived
from starforge_daemon.daemon.observers.delivery import QUEUE_SIZE, Health
from starforge_daemon.store.results import read_result, result_path

FINISH_TIMEOUT = 30.0
TARGET = "ON_FINISH_COMMAND"
OUTPUT_SHOWN = 300  # bytes of a failed command's output in its report


def finish_values(archived: Archived) -> dict[str, str]:
    """The placeholders' values: the event's, and the rest from the result file beside the
    archived trigger."""
    trigger = Path(archived.trigger)
    result = read_result(trigger)
    return {"agent": archived.agent, "ticket": result.ticket or "",
            "action": result.action or "", "from_agent": result.from_agent or "",
            "trigger_file": str(trigger), "run_id": archived.run, "outcome": archived.outcome,
            "exit_code": "" if result.exit_code is None else str(result.exit_code),
            "result_file": str(result_path(trigger))}


class FinishCommands:
    def __init__(self, words: list[str], cwd: Path, env: Mapping[str, str], health: Health,
                 timeout: float = FINISH_TIMEOUT) -> None:
        self._words = words
        self._cwd = cwd
        self._env = dict(env)
        self._health = health
        self._timeout = timeout
        self._queue: queue.Queue[Archived | None] = queue.Queue(QUEUE_SIZE)
        self._running: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._serve, name="on-finish", daemon=True)
        self._thread.start()

    def put(self, archived: Archived) -> None:
        try:
            self._queue.put_nowait(archived)
        except queue.Full:
            self._health.failed(TARGET, f"too many waiting; not run for {archived.run}")

    def close(self, grace: float) -> None:
        """Let the commands waiting run for ``grace`` seconds; then kill the one running."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=grace)
            self._thread.join(grace)
        running = self._running
        if running is not None and running.poll() is None:
            self._kill(running)

    def _serve(self) -> None:
        for archived in iter(self._queue.get, None):
            error = self._run(render_argv(self._words, finish_values(archived)))
            if error is None:
                self._health.worked(TARGET)
            else:
                self._health.failed(TARGET, f"{error} (run {archived.run})")

    def _run(self, argv: list[str]) -> str | None:
        """None when the command exited 0, else what went wrong."""
        with tempfile.TemporaryFile() as output:
            try:
                self._running = process = subprocess.Popen(
                    argv, cwd=self._cwd, env=self._env, stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, start_new_session=True)
            except (OSError, ValueError) as error:  # ValueError: a NUL in an argument
                return f"cannot run {argv[0]}: {getattr(error, 'strerror', None) or error}"
            try:
                code = process.wait(self._timeout)
            except subprocess.TimeoutExpired:
                self._kill(process)
                return f"still running after {self._timeout:g}s; killed"
            finally:
                self._running = None
            if code == 0:
                return None
            output.seek(max(0, output.seek(0, os.SEEK_END) - OUTPUT_SHOWN))
            said = output.read().decode(errors="replace").strip()
            status = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return f"{status}: {said}" if said else status

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
