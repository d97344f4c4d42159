"""The few git commands the worktree provider needs: argv lists, never a shell.

A failing command raises :class:`GitError` carrying git's own last line of complaint, so the
reason can go straight into a trigger's result file.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 300.0


class GitError(Exception):
    """A git command failed or could not be run; the message says why, on one line."""


def git(cwd: Path, *args: str) -> str:
    """Run ``git -C cwd args...``; returns its stdout, raises GitError when it fails."""
    try:
        result = subprocess.run(["git", "-C", str(cwd), *args], check=False, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitError(f"cannot run git {args[0]}: {error}") from None
    if result.returncode != 0:
        complaint = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise GitError(complaint[-1] if complaint else f"git {args[0]} exited {result.returncode}")
    return result.stdout


def show_prefix(cwd: Path) -> str:
    """Where ``cwd`` is inside its checkout (``""`` at the top); GitError outside a repository."""
    return git(cwd, "rev-parse", "--show-prefix").strip()


def common_dir(cwd: Path) -> Path:
    """The repository's shared ``.git`` folder (the same for every worktree)."""
    return (cwd / git(cwd, "rev-parse", "--git-common-dir").strip()).resolve()


def resolve_commit(cwd: Path, revision: str) -> str:
    """The commit id ``revision`` names now."""
    return git(cwd, "rev-parse", "--verify", f"{revision}^{{commit}}").strip()


def branch_exists(cwd: Path, branch: str) -> bool:
    try:
        git(cwd, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True


@dataclass(frozen=True)
class WorktreeEntry:
    """One worktree as ``git worktree list --porcelain`` describes it."""

    path: Path
    branch: str | None = None
    locked: str | None = None  # the lock reason ("" when locked without one)


def list_worktrees(cwd: Path) -> list[WorktreeEntry]:
    entries: list[WorktreeEntry] = []
    for block in git(cwd, "worktree", "list", "--porcelain").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" in fields:
            branch = fields.get("branch", "").removeprefix("refs/heads/") or None
            entries.append(WorktreeEntry(Path(fields["worktree"]), branch, fields.get("locked")))
    return entries


def add_worktree(cwd: Path, path: Path, branch: str, start: str | None) -> None:
    """Check ``branch`` out in a new worktree at ``path``; with ``start``, create the branch
    there first (it must not exist yet)."""
    if start is None:
        git(cwd, "worktree", "add", str(path), branch)
    else:
        git(cwd, "worktree", "add", "-b", branch, str(path), start)


def remove_worktree(cwd: Path, path: Path) -> None:
    """Remove a clean worktree; git itself refuses one with changes or untracked files."""
    git(cwd, "worktree", "remove", str(path))


def discard_unfinished_worktree(cwd: Path, path: Path) -> None:
    """Remove a worktree whose ``git worktree add`` was interrupted: its checkout is partial
    and git still holds it locked, hence the double force. No agent ever worked in it."""
    git(cwd, "worktree", "remove", "--force", "--force", str(path))


def prune_worktrees(cwd: Path) -> None:
    git(cwd, "worktree", "prune")


def uncommitted_changes(worktree: Path) -> int:
    """Modified, staged and untracked paths. Takes no index lock, so an agent's own git
    commands running at the same moment are not disturbed."""
    return len(git(worktree, "--no-optional-locks", "status", "--porcelain").splitlines())
