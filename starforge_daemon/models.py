"""The daemon's vocabulary: triggers, runs, outcomes and slots. Pure data, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

AgentName = Annotated[StrictStr, Field(pattern=AGENT_NAME_PATTERN)]
Ticket = StrictStr | StrictInt


def _no_nul(value: str | None) -> str | None:
    """Trigger text ends up in argv and the environment, where a NUL cannot travel."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class Trigger(BaseModel):
    """One handoff, as read from a ``*.trigger`` file. Unknown fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    to_agent: AgentName
    from_agent: StrictStr | None = None
    action: StrictStr | None = None
    message: StrictStr | None = None
    trace_id: StrictStr | None = None
    ticket: Ticket | None = None
    context: dict[str, Any] | None = None
    priority: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)] = 0
    max_retries: Annotated[StrictInt, Field(ge=0, le=100)] | None = None

    _check_text = field_validator("from_agent", "action", "message", "trace_id")(_no_nul)

    @field_validator("ticket")
    @classmethod
    def _ticket_text(cls, value: Ticket | None) -> Ticket | None:
        return _no_nul(value) if isinstance(value, str) else value

    @field_validator("context")
    @classmethod
    def _context_ticket(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        ticket = (value or {}).get("ticket")
        if ticket is not None and (isinstance(ticket, bool) or not isinstance(ticket, str | int)):
            raise ValueError("context.ticket must be a string or an integer")
        if isinstance(ticket, str):
            _no_nul(ticket)
        return value

    @property
    def ticket_text(self) -> str | None:
        """The ticket as text: the top-level field, else ``context.ticket``."""
        ticket = self.ticket if self.ticket is not None else (self.context or {}).get("ticket")
        return None if ticket is None else str(ticket)


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KILLED = "killed"
    LOST = "lost"
    CANCELLED = "cancelled"
    INVALID = "invalid"

    @property
    def retryable(self) -> bool:
        """Worth another attempt: the agent failed, not the operator or the daemon's bookkeeping."""
        return self in (OutcomeKind.FAILED, OutcomeKind.TIMED_OUT)


class ArchiveFolder(StrEnum):
    """Where a finished trigger goes, relative to ``.claude/triggers/processed``."""

    PROCESSED = "."
    FAILED = "failed"
    INVALID = "invalid"


def folder_for(kind: OutcomeKind) -> ArchiveFolder:
    if kind is OutcomeKind.SUCCEEDED:
        return ArchiveFolder.PROCESSED
    if kind is OutcomeKind.INVALID:
        return ArchiveFolder.INVALID
    return ArchiveFolder.FAILED


class Outcome(BaseModel):
    """How a trigger ended. ``exit_code`` is negative when a signal ended the run."""

    model_config = ConfigDict(frozen=True)

    kind: OutcomeKind
    reason: str
    exit_code: int | None = None

    @classmethod
    def from_exit_code(cls, code: int) -> Outcome:
        if code == 0:
            return cls(kind=OutcomeKind.SUCCEEDED, reason="exited with status 0", exit_code=0)
        if code < 0:
            return cls(kind=OutcomeKind.FAILED, reason=f"killed by signal {-code}", exit_code=code)
        return cls(kind=OutcomeKind.FAILED, reason=f"exited with status {code}", exit_code=code)


class Run(BaseModel):
    """One agent run, written to disk before the agent starts so any later daemon can finish it."""

    run_id: str
    agent: str
    trigger_name: str
    trigger_path: str
    log_path: str
    started_at: float
    timeout: float
    ticket: str | None = None
    action: str | None = None
    from_agent: str | None = None
    workdir: str | None = None
    pool: str | None = None
    attempt: int = 1
    max_retries: int = 0
    priority: int = 0

    @property
    def target(self) -> str:
        """What the trigger was addressed to: the pool, or the agent itself."""
        return self.pool or self.agent

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout


class ProcessIdentity(BaseModel):
    """A pid together with its start time, so a reused pid is never mistaken for ours."""

    model_config = ConfigDict(frozen=True)

    pid: int
    create_time: float


class RunExit(BaseModel):
    """How the agent ended (or why it could not start), as the keeper recorded it."""

    ended_at: float
    exit_code: int | None = None
    error: str | None = None


class SlotStatus(StrEnum):
    BUSY = "busy"
    IDLE = "idle"


class Slot(BaseModel):
    """One agent name's slot. A busy slot carries its run; an idle one only its history."""

    run: Run | None = None
    process: ProcessIdentity | None = None
    last_run_id: str | None = None
    last_outcome: OutcomeKind | None = None
    last_log: str | None = None
    last_finished_at: float | None = None

    @property
    def status(self) -> SlotStatus:
        return SlotStatus.BUSY if self.run else SlotStatus.IDLE


def iso_utc(timestamp: float | None, precise: bool = False) -> str | None:
    """Unix seconds as ISO-8601 UTC with a ``Z``; ``precise`` keeps milliseconds."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    spec = "milliseconds" if precise else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_iso_utc(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
