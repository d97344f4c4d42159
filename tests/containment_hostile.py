"""A process tree that tries to outlive its run (for tests/test_containment.py).

Usage: containment_hostile.py MARKER_DIR [--obedient] [--exit]

The first process ignores SIGTERM and SIGINT, forks a child that calls ``setsid`` and forks
again (the double fork: its grandchild is orphaned, in a session of its own), and waits.
Each process writes ``<role>-<pid>`` into MARKER_DIR once it is in place. With ``--obedient``
nobody ignores the signals (for the graceful stop); with ``--exit`` the first process exits 0
once the others are in place, leaving them behind.
"""

from __future__ import annotations

import os
import signal
import sys


def mark(folder: str, role: str) -> None:
    temp = os.path.join(folder, f".{role}-{os.getpid()}")
    with open(temp, "w"):
        pass
    os.rename(temp, os.path.join(folder, f"{role}-{os.getpid()}"))


def main(folder: str, obedient: bool, leave: bool) -> None:
    if not obedient:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            mark(folder, "orphan")
            while True:
                signal.pause()
        os._exit(0)
    os.wait()
    mark(folder, "leader")
    if leave:
        return
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1], "--obedient" in sys.argv[2:], "--exit" in sys.argv[2:])
