"""``.claude/worktrees/``: how run worktrees are named, their sidecar records and the lock
around their creation and removal. The git-worktree lifecycle is in ``worktrees``."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import OutcomeKind, Run
from starforge_daemon.store.atomic import read_json, write_json_atomic
from starforge_daemon.store.instance import flock_within
from starforge_daemon.store.journal import runs_in_flight
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import WorktreeMode
from starforge_daemon.workspaces.git import (
    WorktreeEntry,
    list_worktrees,
    remove_worktree,
    uncommitted_changes,
)

BRANCH_PREFIX = "starforge/"
AGENT_PREFIX = "agent-"
TICKET_PREFIX = "ticket-"
MAX_SLUG = 48
LOCK_PATIENCE = 30.0


def slug(text: str) -> str:
    """``text`` as a folder and branch name part: only ``[A-Za-z0-9._-]``, nothing git refuses
    in a ref (``..``, a trailing ``.`` or ``.lock``), at most 57 characters. Text that had to
    change gets a short hash of the original, so two different tickets never share a slug."""
    cleaned = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", text))
    if cleaned == text and 0 < len(text) <= MAX_SLUG and not text.endswith((".", ".lock")):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    stem = cleaned[:MAX_SLUG].strip(".-")
    return f"{stem}-{digest}" if stem else digest


def worktree_name(mode: WorktreeMode, run: Run) -> str:
    if mode is WorktreeMode.PER_TICKET and run.ticket:
        return TICKET_PREFIX + slug(run.ticket)
    return AGENT_PREFIX + slug(run.agent)


@dataclass(frozen=True, slots=True)
class WorktreeRecord:
    """A worktree's sidecar: who it belongs to, and which runs work in it right now."""

    agent: str
    ticket: str | None = None
    runs: list[str] = field(default_factory=list)
    last_run: str | None = None
    last_outcome: OutcomeKind | None = None
    last_used_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last_outcome": self.last_outcome and self.last_outcome.value}

    @classmethod
    def from_dict(cls, data: Any) -> WorktreeRecord:
        """Raises ValueError for a sidecar that is not one (cut short, edited by hand)."""
        if not isinstance(data, dict) or not isinstance(data.get("agent"), str):
            raise ValueError("not a worktree record")
        runs = data.get("runs", [])
        ticket, last_run, used = data.get("ticket"), data.get("last_run"), data.get("last_used_at")
        if not (isinstance(runs, list) and all(isinstance(run, str) for run in runs)
                and isinstance(ticket, str | None) and isinstance(last_run, str | None)
                and isinstance(used, int | float | None)):
            raise ValueError("not a worktree record")
        outcome = data.get("last_outcome")
        return cls(data["agent"], ticket, runs, last_run,
                   None if outcome is None else OutcomeKind(outcome), used)


@dataclass(frozen=True)
class WorktreeFolder:
    """``.claude/worktrees/`` of one project: the worktrees, their sidecars and the lock."""

    paths: ProjectPaths

    @property
    def root(self) -> Path:
        return self.paths.worktrees

    @property
    def meta(self) -> Path:
        return self.root / ".meta"

    def path(self, name: str) -> Path:
        return self.root / name

    def label(self, name: str) -> str:
        return str(self.path(name).relative_to(self.paths.root))

    def name_of(self, directory: str | None) -> str | None:
        """The worktree a run's directory is, or None when it is not one of ours."""
        if not directory or Path(directory).parent != self.root:
            return None
        return Path(directory).name

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir()
                      if not entry.name.startswith(".") and entry.is_dir()
                      and not entry.is_symlink())

    def registered(self) -> dict[str, WorktreeEntry]:
        """The worktrees git knows inside this folder, by name."""
        folder = os.path.realpath(self.root)
        return {entry.path.name: entry for entry in list_worktrees(self.paths.root)
                if os.path.realpath(entry.path.parent) == folder}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held around every creation and removal: two ``git worktree add`` at once can
        collide in git's own files, and the CLI's ``clean`` runs in another process. A holder
        that does not let go in LOCK_PATIENCE seconds (a suspended CLI, say) raises
        TimeoutError rather than stalling the daemon."""
        self.meta.mkdir(mode=0o755, parents=True, exist_ok=True)
        lock = self.root / ".lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not flock_within(fd, LOCK_PATIENCE):
                raise TimeoutError(f"{lock} is held by another process")
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _record_path(self, name: str) -> Path:
        return self.meta / f"{name}.json"

    def recorded(self) -> list[str]:
        return sorted(path.stem for path in self.meta.glob("*.json"))

    def read(self, name: str) -> WorktreeRecord | None:
        try:
            return WorktreeRecord.from_dict(read_json(self._record_path(name)))
        except (OSError, ValueError):
            return None

    def write(self, name: str, record: WorktreeRecord) -> None:
        write_json_atomic(self._record_path(name), record.to_dict())

    def forget(self, name: str) -> None:
        self._record_path(name).unlink(missing_ok=True)

    def in_flight(self, record: WorktreeRecord) -> WorktreeRecord:
        """The record without runs that are over, as the run journals in
        ``.claude/daemon/runs/`` tell."""
        open_runs = runs_in_flight(self.paths)
        live = [run_id for run_id in record.runs if run_id in open_runs]
        return replace(record, runs=live)

    def remove_if_clean(self, name: str, branch: str | None) -> str:
        """Remove the worktree when nothing in it is uncommitted; says what it did."""
        changes = uncommitted_changes(self.path(name))
        on = f"branch {branch}" if branch else "detached"
        if changes:
            return f"kept {self.label(name)} ({on}): {changes} uncommitted change(s)"
        remove_worktree(self.paths.root, self.path(name))
        self.forget(name)
        return f"removed {self.label(name)}: clean ({on} kept)"

