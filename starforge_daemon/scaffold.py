"""``starforge init``: the folders, a commented ``.env`` and an example trigger, never
overwriting anything that exists."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .files import rename_noreplace
from .paths import ProjectPaths

ENV_TEMPLATE = "env"
EXAMPLE_TEMPLATE = "example.trigger.json"
# Not ``*.trigger``, so the daemon leaves it alone until someone copies it into the queue.
EXAMPLE_NAME = "example.trigger.example"


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
    return steps
