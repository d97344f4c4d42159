"""``starforge init``: the folders, a commented ``.env``, an example trigger and an example
schedules file, never overwriting anything that exists; and ``.env`` and ``.claude/`` kept out of git."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starforge_daemon.store.atomic import rename_noreplace
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.workspaces.git import GitError, git

ENV_TEMPLATE = "env"
EXAMPLE_TEMPLATE = "example.trigger.json"
# Not ``*.trigger``, so the daemon leaves it alone until someone copies it into the queue.
EXAMPLE_NAME = "example.trigger.example"
SCHEDULES_TEMPLATE = "schedules.toml"


@dataclass(frozen=True)
class Step:
    path: Path
    created: bool


def template_text(name: str) -> str:
    """A file from ``templates/`` (installed as ``starforge_daemon.templates``)."""
    try:
        folder = resources.files("starforge_daemon.templates")
    except ModuleNotFoundError:  # a checkout run through bin/starforge without an install
        return (Path(__file__).resolve().parent.parent / "templates" / name).read_text()
    return folder.joinpath(name).read_text(encoding="utf-8")


def create_file(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``path`` unless something (even a dangling link) is there; True if written.

    Written under a temporary name and renamed without replacing, so a file that appears
    meanwhile is kept too.
    """
    if os.path.lexists(path):
        return False
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        rename_noreplace(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    return True


def init_project(paths: ProjectPaths) -> list[Step]:
    """Set the project up; one step per folder or file, saying whether it was created."""
    steps = []
    for folder in paths.folders():
        existed = folder.is_dir()
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        steps.append(Step(folder, not existed))
    # .env may come to hold an API key: readable by its owner only
    steps.append(Step(paths.env_file, create_file(paths.env_file, template_text(ENV_TEMPLATE),
                                                  0o600)))
    example = paths.triggers / EXAMPLE_NAME
    steps.append(Step(example, create_file(example, template_text(EXAMPLE_TEMPLATE))))
    schedules = paths.schedules_file.with_name(f"{paths.schedules_file.name}.example")
    steps.append(Step(schedules, create_file(schedules, template_text(SCHEDULES_TEMPLATE))))
    return steps


# What an agent's ``git add -A`` must never commit: API keys, and the daemon's run state.
PRIVATE_NAMES = (".env", ".claude/")


def _ignore_pattern(prefix: str, name: str) -> str:
    """An anchored ``info/exclude`` line for ``name`` in the folder ``prefix`` of the checkout,
    with gitignore's wildcards in the folder's name taken literally."""
    return "/" + re.sub(r"([\\*?\[])", r"\\\1", prefix) + name


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


class NotInGit(Exception):
    """No git to keep files out of: not installed, or not in a repository."""


def git_location(root: Path) -> tuple[str, Path]:
    """Where ``root`` is in its checkout (``sub/dir/``, ``""`` at the top) and the clone's
    ``info/exclude`` (shared by its worktrees); raises :class:`NotInGit`, or GitError when
    git fails otherwise."""
    if shutil.which("git") is None:
        raise NotInGit("git is not installed")
    try:
        prefix, where = git(root, "rev-parse", "--show-prefix", "--git-path",
                            "info/exclude").split("\n")[:2]
    except GitError as error:
        if "not a git repository" in str(error):
            raise NotInGit("not in a git repository") from None
        raise
    return prefix, (root / where).resolve()


def exclude_from_git(root: Path) -> str:
    """Keep ``.env`` and ``.claude/`` of the project at ``root`` out of git; returns what was
    done, as one line for the user.

    The lines go to the clone's ``info/exclude``, not to ``.gitignore``: that changes no
    tracked file, so there is nothing to commit (a ``.gitignore`` edit would itself be swept
    into the next ``git add -A``, and into the team's history whether it uses starforge or
    not); and every worktree of the clone shares it.
    """
    try:
        prefix, exclude = git_location(root)
    except NotInGit as error:
        return f"{error}: nothing excluded from git"
    except GitError as error:
        return f"cannot exclude .env and .claude/ from git: {error}"
    shown = _shown(exclude, root)
    try:
        text = exclude.read_text(encoding="utf-8", errors="replace") if exclude.exists() else ""
        present = set(text.splitlines())
        missing = [line for line in (_ignore_pattern(prefix, name) for name in PRIVATE_NAMES)
                   if line not in present]
        if not missing:
            return f"kept    {shown} (.env and .claude/ already excluded from git)"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as file:
            file.write(("\n" if text and not text.endswith("\n") else "") + "\n".join(missing)
                       + "\n")
    except OSError as error:
        return f"cannot exclude .env and .claude/ from git in {shown}: {error.strerror}"
    return f"excluded .env and .claude/ from git in {shown}"
