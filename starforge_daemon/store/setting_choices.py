"""The settings whose value is one of a few words, as enums (``store/settings.py`` declares
them; other modules import them from there)."""

from __future__ import annotations

from enum import StrEnum


class StdinMode(StrEnum):
    """What a run reads on stdin: the prompt (``auto``: for a CLI that takes it there, when no
    argument carries it), or nothing."""

    AUTO = "auto"
    PROMPT = "prompt"
    NULL = "null"


class ResumeMode(StrEnum):
    """Whether a run continues the agent session of the ticket's previous run."""

    OFF = "off"
    PER_TICKET = "per-ticket"


class WorktreeMode(StrEnum):
    """Where runs work: the project root, or a git worktree per agent name or per ticket."""

    OFF = "off"
    PER_AGENT = "per-agent"
    PER_TICKET = "per-ticket"


class RunnerKind(StrEnum):
    """Where runs run: processes on this machine, or Slurm batch jobs."""

    LOCAL = "local"
    SLURM = "slurm"
