"""Where a run works: the project root, or (with ``WORKTREE_MODE``) a git worktree of its own.

The engine asks :meth:`prepare` for a run's workspace before the run starts and calls
:meth:`release` once it has ended; a workspace that cannot be prepared fails that trigger with
the reason, never the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from starforge_daemon.core.models import Outcome, Run


class WorkspaceError(Exception):
    """The run's workspace could not be prepared; the message is the trigger's reason."""


@dataclass(frozen=True)
class Workspace:
    directory: str
    env: dict[str, str] = field(default_factory=dict)


class Workspaces(Protocol):
    def start(self) -> list[str]:
        """Tidy up after an earlier daemon; returns notes for RECOVERY events."""
        ...

    def prepare(self, run: Run) -> Workspace: ...

    def release(self, run: Run, outcome: Outcome) -> str | None:
        """Clean up after the run; returns a note worth logging, if any."""
        ...


class SharedCheckout:
    """``WORKTREE_MODE=off``: every run works in the project root."""

    def __init__(self, root: Path) -> None:
        self._root = str(root)

    def start(self) -> list[str]:
        return []

    def prepare(self, run: Run) -> Workspace:
        return Workspace(self._root)

    def release(self, run: Run, outcome: Outcome) -> str | None:
        return None
