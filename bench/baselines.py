"""What the same work costs without the daemon, measured in the same invocation.

``true`` here is always the binary (``/usr/bin/true``), never the shell builtin, so every
baseline run costs one fork and exec, as an agent run does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TRUE = shutil.which("true") or "/bin/true"
TSP_TIMEOUT = 600.0


def _timed(argv: Sequence[str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def xargs_parallel(count: int, slots: int) -> float:
    """Seconds for ``count`` runs of ``true`` through ``xargs -P slots``."""
    numbers = "".join(f"{index}\n" for index in range(count))
    return _timed(["xargs", "-P", str(slots), "-n", "1", TRUE], numbers.encode())


def shell_loop(count: int) -> float:
    """Seconds for ``count`` runs of ``true`` one after the other in a ``sh`` loop."""
    script = f'i=0; while [ "$i" -lt {count} ]; do "{TRUE}"; i=$((i + 1)); done'
    return _timed(["sh", "-c", script])


def direct_start_latency(argv: Sequence[str]) -> float:
    """Seconds from the spawn call to the moment a ``date +%s.%N`` program says it ran."""
    output, agent_output = os.pipe()
    try:
        spawned_at = time.time()
        pid = os.posix_spawnp(argv[0], list(argv), os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, agent_output, 1)])
        os.close(agent_output)
        agent_output = -1
        printed = b""
        while chunk := os.read(output, 4096):
            printed += chunk
        os.waitpid(pid, 0)
    finally:
        os.close(output)
        if agent_output >= 0:
            os.close(agent_output)
    return float(printed.split()[-1]) - spawned_at


def task_spooler() -> str | None:
    """The task-spooler client, if installed (Debian names it ``tsp``, upstream ``ts``)."""
    for name in ("tsp", "ts"):
        path = shutil.which(name)
        if path and _is_task_spooler(path):
            return path
    return None


def _is_task_spooler(path: str) -> bool:
    """``ts`` is also moreutils' timestamp filter; only task-spooler knows ``-V``."""
    try:
        result = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=5,
                                stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Task Spooler" in result.stdout + result.stderr


def task_spooler_drain(client: str, count: int, slots: int, workdir: Path) -> dict[str, float]:
    """Seconds to run ``count`` ``true`` jobs through a private task-spooler with ``slots`` slots.

    task-spooler keeps each queued job as a waiting client process on one of at most 1,000
    connections, so a backlog cannot be queued ahead of time: the figure is submitting every
    job (one ``tsp -n true`` each, from a ``sh`` loop) plus the drain that overlaps it. Its
    socket and the files it keeps per job go into ``workdir``, where the daemon's files go.
    """
    with tempfile.TemporaryDirectory(prefix="tsp-", dir=workdir) as private:
        env = {**os.environ, "TMPDIR": private, "TS_SOCKET": str(Path(private) / "socket"),
               "TS_SLOTS": str(slots), "TS_MAXFINISHED": "100"}
        env.pop("TS_ONFINISH", None)
        env.pop("TS_ENV", None)
        try:
            return _spool(client, count, env)
        finally:
            subprocess.run([client, "-K"], env=env, capture_output=True, check=False, timeout=30)


def _spool(client: str, count: int, env: dict[str, str]) -> dict[str, float]:
    script = (f'i=0; while [ "$i" -lt {count} ]; do "{client}" -n "{TRUE}" >/dev/null || exit 1; '
              "i=$((i + 1)); done")
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=TSP_TIMEOUT)
    submitted = time.perf_counter()
    subprocess.run([client, "-w"], env=env, capture_output=True, check=False, timeout=TSP_TIMEOUT)
    while _tsp_busy(client, env):  # ``-w`` waits for the last job; others may still run
        time.sleep(0.01)
    finished = time.perf_counter()
    return {"total_s": finished - started, "submit_s": submitted - started,
            "drain_after_submit_s": finished - submitted}


def _tsp_busy(client: str, env: dict[str, str]) -> bool:
    listing = subprocess.run([client, "-l"], env=env, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    states = [line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1]
    return any(state in ("running", "queued", "allocating") for state in states)
