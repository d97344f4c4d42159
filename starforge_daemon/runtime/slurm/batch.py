#!/usr/bin/env python3
"""The batch script of a run's Slurm job: what the keeper does for a local run, on a node.

``sbatch`` sends this file to the controller, so it is self-contained (standard library only):
a node needs python3 and the agent's program, and the project folder at the same path as the
daemon's (shared filesystem). Its one argument is the run's spec, a JSON file the daemon wrote
with mode 0600 (argv, environment, stdin, log cap, journal), read and removed at once: nothing
of the run passes through a shell, and its environment is exactly the spec's.

The agent runs in this script's process group, so ``scancel --full --signal=...`` reaches it
(the script itself waits on); whatever it leaves behind is killed with the job's cgroup at the
end of the job. Its output is copied into the job's ``--output`` (the run's log), capped like a
local run's log. Its end is appended to the run's journal, and the script ends the same way
(same exit code, or killed by the same signal), so Slurm records the agent's real status.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

_CHUNK = 1 << 16
_MARKER = b"\n[starforge: output over LOG_MAX_BYTES dropped here; the latest output follows]\n"


class CappedOutput:
    """The job's stdout (the run's log), never past ``cap`` bytes: on overflow the file is cut
    back to its first half and a marker, and the newest output follows (as a local run's)."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd = fd
        self.cap = cap
        self.size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        try:
            if self.size + len(data) > self.cap:
                head = min(self.size, self.cap // 2)
                os.ftruncate(self.fd, head)
                os.lseek(self.fd, 0, os.SEEK_END)
                os.write(self.fd, _MARKER)
                self.size = head + len(_MARKER)
                data = data[-(self.cap - self.size):]
            self.size += os.write(self.fd, data)
        except OSError:  # a disk that refuses output does not stop the run
            pass


def append_exit(spec: dict[str, Any], ended: dict[str, Any]) -> None:
    line = json.dumps({"run_id": spec["run_id"], "exit": ended}, separators=(",", ":"))
    try:
        with open(spec["journal"], "a", encoding="utf-8") as journal:
            journal.write(line + "\n")
    except OSError as error:
        print(f"starforge: cannot append to the run's journal: {error}", file=sys.stderr)


def copy_output(agent: subprocess.Popen[bytes], output: int, log: CappedOutput) -> None:
    """Copy the agent's output until it exits, then what it had written; a descendant that
    keeps the pipe open does not hold the job (the cgroup takes it at the end)."""
    pidfd = os.pidfd_open(agent.pid)
    exited = False
    while True:
        readable, _, _ = select.select([output, pidfd], [], [], 0 if exited else None)
        exited = exited or pidfd in readable
        if output in readable:
            data = os.read(output, _CHUNK)
            if data:
                log.write(data)
                continue
            break
        if exited:
            break
    os.close(pidfd)


def run(spec: dict[str, Any]) -> int:
    """Run the agent; its wait status as an exit code (negative: the signal that killed it)."""
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, lambda _number, _frame: None)  # for the agent; reset at exec
    stdin = spec["stdin"] or os.devnull
    output, into = os.pipe()
    try:
        with open(stdin, "rb") as source:
            agent = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"],
                                     stdin=source, stdout=into, stderr=into)
    except OSError as error:
        append_exit(spec, {"ended_at": time.time(), "exit_code": None,
                           "error": f"cannot start: {error}"})
        return 127
    finally:
        os.close(into)
    copy_output(agent, output, CappedOutput(sys.stdout.fileno(), int(spec["log_cap"])))
    code = agent.wait()
    append_exit(spec, {"ended_at": time.time(), "exit_code": code})
    return code


def main(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as file:
        spec = json.load(file)
    os.unlink(spec_path)
    code = run(spec)
    sys.stdout.flush()
    if code < 0:  # end as the agent did, so that Slurm records the same signal
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1])
