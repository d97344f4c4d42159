"""A cgroup folder of a bench's own, beside the daemon's, prepared as a project's would be."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "starforge_daemon" / "runtime"
                       / "local"))
import containment  # the keeper imports it the same way, as a sibling module

__all__ = ["containment", "scratch_containment"]


@contextlib.contextmanager
def scratch_containment(name: str) -> Iterator[containment.Containment]:
    """The containment of a scratch project under a new ``starforge-<name>-*`` cgroup folder;
    every cgroup made in it is killed and removed afterwards. Exits where there is no cgroup."""
    host = containment.detect(Path.cwd())
    if host.root is None:
        sys.exit(f"no cgroup here: {host.text}")
    root = os.path.join(os.path.dirname(host.root), f"starforge-{name}-{uuid.uuid4().hex[:8]}")
    os.mkdir(root)
    found = containment.prepare(containment.detect(Path.cwd(), root=root))
    try:
        yield found
    finally:
        containment.remove_stale(found, set())
        for folder in (found.project, root):
            if folder is not None:
                os.rmdir(folder)
