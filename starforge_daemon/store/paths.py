"""Every path the daemon and its clients use, derived from the project root, and how the
project root is found: like git finds a repository, or named."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """Every path the daemon and its clients use, derived from the project root (each worked
    out once: the daemon asks for some on every trigger)."""

    root: Path

    @classmethod
    def find(cls, start: str | os.PathLike[str]) -> ProjectPaths | None:
        """The nearest project from ``start`` upwards: the first folder holding a ``.claude/``
        directory, as git finds a repository; None when there is none."""
        here = Path(start).resolve()
        for folder in (here, *here.parents):
            if (folder / ".claude").is_dir():
                return cls(folder)
        return None

    @classmethod
    def resolve(cls, project_dir: str | os.PathLike[str] | None = None) -> ProjectPaths:
        """``project_dir``, else ``STARFORGE_PROJECT_DIR``, else the nearest project from the
        current folder upwards, else the current folder."""
        return locate(project_dir or os.environ.get("STARFORGE_PROJECT_DIR")).paths

    @cached_property
    def env_file(self) -> Path:
        return self.root / ".env"

    @cached_property
    def claude(self) -> Path:
        return self.root / ".claude"

    @cached_property
    def triggers(self) -> Path:
        return self.claude / "triggers"

    @cached_property
    def running(self) -> Path:
        """Where a trigger waits while its agent runs."""
        return self.triggers / "running"

    @cached_property
    def processed(self) -> Path:
        return self.triggers / "processed"

    @cached_property
    def failed(self) -> Path:
        return self.processed / "failed"

    @cached_property
    def invalid(self) -> Path:
        return self.processed / "invalid"

    @cached_property
    def daemon_dir(self) -> Path:
        return self.claude / "daemon"

    @cached_property
    def runs(self) -> Path:
        """Per-run bookkeeping of the runs in flight."""
        return self.daemon_dir / "runs"

    def prompt_file(self, run_id: str) -> Path:
        """A run's prompt, for ``{prompt_file}`` and stdin; removed when the run is done."""
        return self.runs / f"{run_id}.prompt"

    def upstream_file(self, run_id: str) -> Path:
        """The hand-off of a run whose trigger waited for others (``STARFORGE_UPSTREAM_RESULTS``):
        what each of them ended with; removed when the run is done."""
        return self.runs / f"{run_id}.upstream.json"

    @cached_property
    def attempts(self) -> Path:
        """Earlier attempts of triggers waiting to be retried."""
        return self.daemon_dir / "attempts"

    @cached_property
    def paused_file(self) -> Path:
        return self.daemon_dir / "paused.json"

    @cached_property
    def control_socket(self) -> Path:
        return self.daemon_dir / "control.sock"

    @cached_property
    def slots_file(self) -> Path:
        return self.daemon_dir / "agent-slots.json"

    @cached_property
    def state_file(self) -> Path:
        return self.daemon_dir / "daemon-state.json"

    @cached_property
    def schedules_file(self) -> Path:
        """Recurring triggers, written by people (``docs/schedules.md``)."""
        return self.claude / "schedules.toml"

    @cached_property
    def schedules_state(self) -> Path:
        """Each schedule's last firing, so a restart neither fires twice nor forgets one."""
        return self.daemon_dir / "schedules-state.json"

    @cached_property
    def history_file(self) -> Path:
        return self.daemon_dir / "runs.jsonl"

    @cached_property
    def lock_file(self) -> Path:
        return self.daemon_dir / "daemon.lock"

    @cached_property
    def keeper_socket(self) -> Path:
        return self.daemon_dir / "keeper.sock"

    @cached_property
    def keeper_log(self) -> Path:
        return self.logs / "keeper.log"

    @cached_property
    def pid_file(self) -> Path:
        return self.claude / "daemon.pid"

    @cached_property
    def logs(self) -> Path:
        return self.claude / "logs"

    @cached_property
    def daemon_log(self) -> Path:
        return self.logs / "daemon.log"

    @cached_property
    def worktrees(self) -> Path:
        """The runs' git worktrees (``WORKTREE_MODE``), made only when a mode is on."""
        return self.claude / "worktrees"

    def folders(self) -> tuple[Path, ...]:
        return (
            self.claude,  # made here, not as a parent, so it gets 0755 too
            self.triggers,
            self.running,
            self.processed,
            self.failed,
            self.invalid,
            self.daemon_dir,
            self.runs,
            self.attempts,
            self.logs,
        )

    def ensure(self) -> None:
        for folder in self.folders():
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)


NOT_A_PROJECT = "not a starforge project here or above (run `starforge init`)"


@dataclass(frozen=True)
class Location:
    """Where a command's project is: ``paths``, and ``problem`` (one line) when it is no
    project. ``named`` tells a folder given by the user from one found from ``start``."""

    paths: ProjectPaths
    problem: str | None
    named: bool
    start: Path


def locate(named: str | os.PathLike[str] | None) -> Location:
    """The project in the folder ``named``, or else the nearest one from the current folder
    upwards. Never fails: a folder that is no project comes with its ``problem``."""
    try:
        start = Path.cwd().resolve()
    except FileNotFoundError:  # the folder the shell is in was deleted
        start = Path(os.environ.get("PWD") or "/")
        if named is None:
            return Location(ProjectPaths(start), "the current folder no longer exists", False,
                            start)
    if named is None:
        found = ProjectPaths.find(start)
        if found is not None:
            return Location(found, None, False, start)
        return Location(ProjectPaths(start), NOT_A_PROJECT, False, start)
    paths = ProjectPaths(Path(named).expanduser().resolve())
    if not paths.root.exists():
        problem: str | None = f"no such folder {paths.root}"
    elif not paths.root.is_dir():
        problem = f"not a folder: {paths.root}"
    elif not paths.claude.is_dir():
        problem = (f"not a starforge project: {paths.root} has no .claude/ folder "
                   "(run `starforge init` there)")
    else:
        problem = None
    return Location(paths, problem, True, start)
