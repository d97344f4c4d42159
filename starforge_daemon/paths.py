"""Every path the daemon and its clients use, derived from the project root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """Every path the daemon and its clients use, derived from the project root."""

    root: Path

    @classmethod
    def resolve(cls, project_dir: str | os.PathLike[str] | None = None) -> ProjectPaths:
        chosen = project_dir or os.environ.get("STARFORGE_PROJECT_DIR") or os.getcwd()
        return cls(Path(chosen).resolve())

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def claude(self) -> Path:
        return self.root / ".claude"

    @property
    def triggers(self) -> Path:
        return self.claude / "triggers"

    @property
    def running(self) -> Path:
        """Where a trigger waits while its agent runs."""
        return self.triggers / "running"

    @property
    def processed(self) -> Path:
        return self.triggers / "processed"

    @property
    def failed(self) -> Path:
        return self.processed / "failed"

    @property
    def invalid(self) -> Path:
        return self.processed / "invalid"

    @property
    def daemon_dir(self) -> Path:
        return self.claude / "daemon"

    @property
    def runs(self) -> Path:
        """Per-run bookkeeping of the runs in flight."""
        return self.daemon_dir / "runs"

    @property
    def attempts(self) -> Path:
        """Earlier attempts of triggers waiting to be retried."""
        return self.daemon_dir / "attempts"

    @property
    def paused_file(self) -> Path:
        return self.daemon_dir / "paused.json"

    @property
    def control_socket(self) -> Path:
        return self.daemon_dir / "control.sock"

    @property
    def slots_file(self) -> Path:
        return self.daemon_dir / "agent-slots.json"

    @property
    def state_file(self) -> Path:
        return self.daemon_dir / "daemon-state.json"

    @property
    def history_file(self) -> Path:
        return self.daemon_dir / "runs.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.daemon_dir / "daemon.lock"

    @property
    def keeper_socket(self) -> Path:
        return self.daemon_dir / "keeper.sock"

    @property
    def keeper_log(self) -> Path:
        return self.logs / "keeper.log"

    @property
    def pid_file(self) -> Path:
        return self.claude / "daemon.pid"

    @property
    def logs(self) -> Path:
        return self.claude / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.logs / "daemon.log"

    @property
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
