"""Runs in git worktrees of their own (``WORKTREE_MODE=per-agent`` or ``per-ticket``).

Everything lives in the project's ``.claude/worktrees/``, which is added to
``.git/info/exclude`` so the main checkout never shows it as untracked::

    agent-<agent>/        per-agent worktree, on branch starforge/agent-<agent>
    ticket-<ticket>/      per-ticket worktree, on branch starforge/ticket-<ticket>
    .meta/<name>.json     its sidecar: agent, ticket, runs using it now, last run and outcome
    .lock                 flock that serialises creation and removal (daemon and CLI alike)

A run without a ticket in per-ticket mode works in its agent's worktree. A new branch starts at
``WORKTREE_BASE`` (resolved when the worktree is made); an existing branch is checked out as
it is, so a ticket's later runs continue its work. A per-ticket worktree is removed after a
successful run that left nothing uncommitted; anything else is kept. Nothing with uncommitted
work is ever force-removed: only a worktree whose ``git worktree add`` was interrupted (no agent
ever saw it) is discarded with force.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import Outcome, OutcomeKind, Run, iso_utc
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings, WorktreeMode
from starforge_daemon.workspaces.base import Workspace, WorkspaceError
from starforge_daemon.workspaces.git import (
    GitError,
    WorktreeEntry,
    add_worktree,
    branch_exists,
    common_dir,
    discard_unfinished_worktree,
    prune_worktrees,
    resolve_commit,
    show_prefix,
    uncommitted_changes,
)
from starforge_daemon.workspaces.worktree_folder import (
    BRANCH_PREFIX,
    TICKET_PREFIX,
    WorktreeFolder,
    WorktreeRecord,
    worktree_name,
)

EXCLUDE_PATTERN = "/.claude/worktrees/"
UNFINISHED_LOCK = "initializing"  # git's lock reason while ``git worktree add`` is at work


class WorktreeSetupError(Exception):
    """Worktrees cannot work in this project; the message names the setting, on one line."""


class GitWorktrees:
    """The :class:`~.workspaces.Workspaces` provider for ``WORKTREE_MODE`` per-agent/per-ticket."""

    def __init__(self, paths: ProjectPaths, mode: WorktreeMode, base: str) -> None:
        self.folder = WorktreeFolder(paths)
        self.mode = mode
        self.base = base
        self._repo = paths.root

    @classmethod
    def open(cls, paths: ProjectPaths, settings: Settings) -> GitWorktrees:
        """Check that worktrees can work here; raises :class:`WorktreeSetupError`."""
        mode = settings.WORKTREE_MODE
        try:
            prefix = show_prefix(paths.root)
        except GitError as error:
            raise WorktreeSetupError(f"WORKTREE_MODE={mode} needs a git repository, and "
                                     f"{paths.root} is not in one ({error})") from None
        if prefix:
            raise WorktreeSetupError(f"WORKTREE_MODE={mode} needs the project root at the top "
                                     f"of its git checkout; {paths.root} is {prefix} inside one")
        try:
            resolve_commit(paths.root, settings.WORKTREE_BASE)
        except GitError as error:
            raise WorktreeSetupError(f"WORKTREE_BASE={settings.WORKTREE_BASE!r} does not name a "
                                     f"commit in {paths.root} ({error})") from None
        return cls(paths, mode, settings.WORKTREE_BASE)

    # -- at daemon start ---------------------------------------------------------------------

    def start(self) -> list[str]:
        """Prune git's records, keep the folder ignored, clean up what a crash left half-made."""
        try:
            with self.folder.locked():
                prune_worktrees(self._repo)
                self._exclude_from_git()
                return self._tidy()
        except (GitError, OSError) as error:
            return [f"cannot tidy {self.folder.root}: {error}"]

    def _exclude_from_git(self) -> None:
        exclude = common_dir(self._repo) / "info" / "exclude"
        text = exclude.read_text() if exclude.exists() else ""
        if EXCLUDE_PATTERN not in text.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            separator = "" if not text or text.endswith("\n") else "\n"
            with exclude.open("a") as file:
                file.write(f"{separator}{EXCLUDE_PATTERN}\n")

    def _tidy(self) -> list[str]:
        registered = self.folder.registered()
        notes = []
        for name in self.folder.folders():
            entry = registered.get(name)
            try:
                note = self._tidy_stray(name) if entry is None else self._tidy_worktree(name, entry)
            except (GitError, OSError) as error:
                note = f"cannot tidy {self.folder.label(name)}: {error}"
            if note:
                notes.append(note)
        for name in self.folder.recorded():
            if name not in registered and not os.path.lexists(self.folder.path(name)):
                self.folder.forget(name)
        return notes

    def _tidy_stray(self, name: str) -> str:
        """A folder git does not know: half-made, unless it has a sidecar (an agent worked
        there once) or git state of its own, which are left for a person to look at."""
        path = self.folder.path(name)
        label = self.folder.label(name)
        if self.folder.read(name) is not None or _has_git_state(path):
            return f"{label} is not a worktree of this repository; left alone (remove it " \
                   "yourself once you have looked)"
        shutil.rmtree(path)
        return f"removed {label}: a half-created worktree folder unknown to git"

    def _tidy_worktree(self, name: str, entry: WorktreeEntry) -> str | None:
        if entry.locked == UNFINISHED_LOCK:
            discard_unfinished_worktree(self._repo, entry.path)
            self.folder.forget(name)
            return f"removed {self.folder.label(name)}: its creation was interrupted"
        record = self.folder.read(name)
        if record is None:  # made, but the daemon died before handing it to a run
            return self.folder.remove_if_clean(name, entry.branch)
        live = self.folder.in_flight(record)
        if live != record:
            self.folder.write(name, live)
        return None

    # -- per run -----------------------------------------------------------------------------

    def prepare(self, run: Run) -> Workspace:
        name = worktree_name(self.mode, run)
        path = self.folder.path(name)
        try:
            with self.folder.locked():
                branch = self._ensure(name)
                self._claim(name, run)
        except (GitError, OSError) as error:
            raise WorkspaceError(f"cannot prepare worktree {self.folder.label(name)} on branch "
                                 f"{BRANCH_PREFIX}{name}: {error}") from None
        return Workspace(str(path), {"STARFORGE_WORKTREE": str(path),
                                     "STARFORGE_BRANCH": branch or ""})

    def _ensure(self, name: str) -> str | None:
        """Reuse the worktree or make it; returns the branch checked out there (None: detached)."""
        path = self.folder.path(name)
        entry = self.folder.registered().get(name)
        if entry is not None and path.is_dir():
            return entry.branch
        if os.path.lexists(path):
            raise GitError(f"{path} exists but is not a worktree of this repository")
        if entry is not None:  # registered, but its folder was deleted
            prune_worktrees(self._repo)
        branch = BRANCH_PREFIX + name
        start = None if branch_exists(self._repo, branch) else resolve_commit(self._repo, self.base)
        add_worktree(self._repo, path, branch, start)
        return branch

    def _claim(self, name: str, run: Run) -> None:
        record = self.folder.read(name)
        runs = self.folder.in_flight(record).runs if record else []
        self.folder.write(name, WorktreeRecord(
            agent=run.agent, ticket=run.ticket, runs=[*runs, run.run_id], last_run=run.run_id,
            last_used_at=run.started_at))

    def release(self, run: Run, outcome: Outcome) -> str | None:
        name = self.folder.name_of(run.workdir)
        if name is None:
            return None
        label = self.folder.label(name)
        try:
            with self.folder.locked():
                others = self._unclaim(name, run, outcome)
                if not name.startswith(TICKET_PREFIX):
                    return None
                if outcome.kind is not OutcomeKind.SUCCEEDED:
                    return f"kept {label}: the run did not succeed ({outcome.reason})"
                if others:
                    return f"kept {label}: still in use by run {', '.join(others)}"
                entry = self.folder.registered().get(name)
                return self.folder.remove_if_clean(name, entry.branch if entry else None)
        except (GitError, OSError) as error:
            return f"cannot tidy {label}: {error}"

    def _unclaim(self, name: str, run: Run, outcome: Outcome) -> list[str]:
        """Record how the run ended; returns the other runs still working there."""
        record = self.folder.read(name)
        if record is None:
            return []
        others = [r for r in self.folder.in_flight(record).runs if r != run.run_id]
        self.folder.write(name, replace(record, runs=others, last_outcome=outcome.kind))
        return others


def _has_git_state(path: Path) -> bool:
    """A repository of its own, or a worktree link to one that exists."""
    marker = path / ".git"
    if marker.is_dir():
        return True
    try:
        target = marker.read_text().removeprefix("gitdir:").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(target) and (path / target).exists()


# -- for ``starforge worktrees`` -------------------------------------------------------------


@dataclass(frozen=True)
class WorktreeInfo:
    """One line of ``starforge worktrees``."""

    name: str
    path: str
    branch: str | None
    agent: str | None
    ticket: str | None
    last_run: str | None
    last_outcome: str | None
    last_used_at: float | None
    runs: list[str]
    changes: int | None  # None: git could not tell (folder missing, say)

    @property
    def dirty(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "last_used_at": iso_utc(self.last_used_at),
                "dirty": self.dirty, "busy": bool(self.runs)}


def describe_worktrees(paths: ProjectPaths) -> list[WorktreeInfo]:
    """The run worktrees of the project; raises GitError outside a git repository."""
    folder = WorktreeFolder(paths)
    return [_describe(folder, name, entry) for name, entry in sorted(folder.registered().items())]


def _describe(folder: WorktreeFolder, name: str, entry: WorktreeEntry) -> WorktreeInfo:
    try:
        changes: int | None = uncommitted_changes(entry.path)
    except GitError:
        changes = None
    info = WorktreeInfo(name=name, path=str(entry.path), branch=entry.branch, agent=None,
                        ticket=None, last_run=None, last_outcome=None, last_used_at=None,
                        runs=[], changes=changes)
    record = folder.read(name)
    if record is None:
        return info
    return replace(info, agent=record.agent, ticket=record.ticket, last_run=record.last_run,
                   last_outcome=record.last_outcome.value if record.last_outcome else None,
                   last_used_at=record.last_used_at, runs=record.runs)


def clean_worktrees(paths: ProjectPaths) -> list[str]:
    """Remove every run worktree that is idle and has nothing uncommitted; says what it did
    with each. Branches stay. A worktree a run uses is never touched."""
    folder = WorktreeFolder(paths)
    if not folder.root.is_dir():
        return []
    notes = []
    with folder.locked():
        for name, entry in sorted(folder.registered().items()):
            record = folder.read(name)
            if record is not None and record.runs:
                notes.append(f"kept {folder.label(name)}: in use by run {', '.join(record.runs)}")
                continue
            try:
                notes.append(folder.remove_if_clean(name, entry.branch))
            except GitError as error:
                notes.append(f"kept {folder.label(name)}: {error}")
    return notes
