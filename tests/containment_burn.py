"""Spend some CPU and memory, then exit (for tests/test_containment.py).

Usage: containment_burn.py CPU_SECONDS MEGABYTES [--orphan]

With ``--orphan`` the burning is done by a grandchild in a session of its own, which the run's
first process does not wait for: the sweep's figures then miss what it spent before exiting.
"""

from __future__ import annotations

import os
import sys
import time


def burn(seconds: float, megabytes: int) -> None:
    block = bytearray(megabytes << 20)
    for offset in range(0, len(block), 4096):  # touch every page: it counts as resident
        block[offset] = 1
    while time.process_time() < seconds:
        pass


def main(seconds: float, megabytes: int, orphan: bool) -> None:
    if not orphan:
        burn(seconds, megabytes)
        return
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            burn(seconds, megabytes)
        os._exit(0)
    os.wait()


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]), "--orphan" in sys.argv[3:])
