"""The daemon's vocabulary: triggers, runs, outcomes and slots. Pure data, no I/O.

Plain dataclasses: a client that only writes a trigger imports this module too, and must start
fast. Whatever crosses the disk has an explicit ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from starforge_daemon.core.streams import Summary
from starforge_daemon.core.streams.reports import summary_from_dict

AGENT_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def is_agent_name(text: object) -> bool:
    """The contract's ``^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$``."""
    return (isinstance(text, str) and 0 < len(text) <= 64 and text[0] not in "._-"
            and _NAME_CHARACTERS.issuperset(text))


def assigned_id(file_name: str) -> str:
    """The id of a trigger that names none: its file name without ``.trigger`` where that is
    a valid id, else a hash of the name (stable across restarts; renames on collision happen
    after it is taken)."""
    stem = file_name.removesuffix(".trigger")
    if is_agent_name(stem):
        return stem
    digest = hashlib.sha256(file_name.encode("utf-8", "surrogateescape")).hexdigest()
    return f"t-{digest[:16]}"


@dataclass(frozen=True, slots=True)
class Trigger:
    """One handoff, as read from a ``*.trigger`` file; ``intake.trigger_from_dict`` checks it.

    Fields the daemon does not know are kept in ``extra`` and handed on with the rest.
    """

    to_agent: str
    from_agent: str | None = None
    action: str | None = None
    message: str | None = None
    trace_id: str | None = None
    ticket: str | int | None = None
    context: dict[str, Any] | None = None
    priority: int = 0
    max_retries: int | None = None
    timeout: float | None = None  # seconds this run may take, instead of AGENT_TIMEOUT
    id: str | None = None  # the writer's own id; the daemon assigns one when there is none
    after: tuple[str, ...] = ()  # ids of the triggers that must end first
    on_upstream_failure: str = "fail"  # fail, skip or run, when one of ``after`` did not succeed
    dedupe_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ticket_text(self) -> str | None:
        """The ticket as text: the top-level field, else ``context.ticket``."""
        ticket = self.ticket if self.ticket is not None else (self.context or {}).get("ticket")
        return None if ticket is None else str(ticket)

    def to_dict(self) -> dict[str, Any]:
        """The trigger as JSON would hold it: the known fields not at their default, in their
        order, then the unknown ones as given."""
        known = {name: getattr(self, name) for name, default in _TRIGGER_DEFAULTS.items()
                 if getattr(self, name) != default}
        if self.after:
            known["after"] = list(self.after)
        return {**known, **self.extra}

    def to_json(self) -> str:
        """Compact JSON, as submitted triggers are written and as the prompt carries it."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)


_TRIGGER_DEFAULTS = {spec.name: spec.default for spec in fields(Trigger) if spec.name != "extra"}
TRIGGER_FIELDS = tuple(_TRIGGER_DEFAULTS)


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    STALLED = "stalled"  # its output stopped (AGENT_STALL_TIMEOUT, AGENT_FIRST_OUTPUT_TIMEOUT)
    OVER_BUDGET = "over_budget"
    RATE_LIMITED = "rate_limited"  # queued again without counting an attempt
    KILLED = "killed"
    OOM = "oom"
    LOST = "lost"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # not run: a dependency did not succeed, and it said "skip"
    INVALID = "invalid"
    DUPLICATE = "duplicate"  # its dedupe_key matched a trigger still waiting or running

    @property
    def retryable(self) -> bool:
        """Worth another attempt: the agent failed, not the operator or the daemon's bookkeeping."""
        return self in (OutcomeKind.FAILED, OutcomeKind.TIMED_OUT, OutcomeKind.STALLED)


class ArchiveFolder(StrEnum):
    """Where a finished trigger goes, relative to ``.claude/triggers/processed``."""

    PROCESSED = "."
    FAILED = "failed"
    INVALID = "invalid"


def folder_for(kind: OutcomeKind) -> ArchiveFolder:
    if kind is OutcomeKind.SUCCEEDED:
        return ArchiveFolder.PROCESSED
    if kind in (OutcomeKind.INVALID, OutcomeKind.DUPLICATE):
        return ArchiveFolder.INVALID
    return ArchiveFolder.FAILED


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a trigger ended. ``exit_code`` is negative when a signal ended the run."""

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


_JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float),
                                            "None": (type(None),)}


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(spec.name for spec in fields(cls))


def flat_dict(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, values as they are: ``dataclasses.asdict`` deep-copies
    every value, which cost the daemon a tenth of a millisecond per record written."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


def _fields_from_json(cls: type, data: Any) -> dict[str, Any]:
    """The fields of the dataclass ``cls`` out of a JSON object, each checked against its
    declared type (``str``, ``int``, ``float``, ``None`` and unions of them); unknown keys
    are ignored. Raises ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} record is not a JSON object")
    values: dict[str, Any] = {}
    for name, required, allowed in _json_fields(cls):
        if name not in data:
            if required:
                raise ValueError(f"{cls.__name__} record lacks {name}")
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ValueError(f"{cls.__name__} record has {name}={value!r}")
        values[name] = value
    return values


@functools.cache
def _json_fields(cls: type) -> tuple[tuple[str, bool, tuple[type, ...]], ...]:
    """Each field of ``cls``: its name, whether it is required, and the JSON types it takes
    (none for a field of another type), worked out once: every keeper message is read
    through this."""
    return tuple((spec.name, spec.default is MISSING,
                  tuple(kind for part in str(spec.type).split("|")
                        for kind in _JSON_TYPES.get(part.strip(), ())))
                 for spec in fields(cls))


@dataclass(frozen=True, slots=True)
class Run:
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
    trigger_id: str | None = None
    dedupe_key: str | None = None
    behind: str | None = None  # the run it was handed over to start behind (``daemon/handover``)

    @property
    def target(self) -> str:
        """What the trigger was addressed to: the pool, or the agent itself."""
        return self.pool or self.agent

    @property
    def trigger_ident(self) -> str:
        """The trigger's id; a run journalled without one has the id its name gives."""
        return self.trigger_id or assigned_id(self.trigger_name)

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout

    def begun_by(self, moment: float) -> Run:
        """A run handed over to start behind another began when that one ended (its timeout
        counts from then): as begun at ``moment``, if that is later than asked."""
        if self.behind is None or moment <= self.started_at:
            return self
        return replace(self, started_at=moment)

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Run:
        return cls(**_fields_from_json(cls, data))


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A pid with its start (seconds since boot: the kernel's stamp, the same whoever reads it,
    unlike a wall-clock time; a Slurm job's submit), so a reused pid is never taken for ours."""

    pid: int
    start: float

    @classmethod
    def from_dict(cls, data: Any) -> ProcessIdentity:
        return cls(**_fields_from_json(cls, data))


@dataclass(frozen=True, slots=True)
class RunExit:
    """How the agent ended (or why it could not start), as the keeper recorded it."""

    ended_at: float
    exit_code: int | None = None
    error: str | None = None
    cpu_seconds: float | None = None  # the whole container's, where the host accounts for it
    peak_memory_bytes: int | None = None
    oom_kills: int | None = None  # processes the kernel killed for the run's memory limit
    stream: Summary | None = None  # the run's own account, where its output was read as events

    @classmethod
    def from_dict(cls, data: Any) -> RunExit:
        plain = {key: value for key, value in data.items() if key != "stream"} \
            if isinstance(data, dict) else data
        return cls(**_fields_from_json(cls, plain),
                   stream=summary_from_dict(data.get("stream")))


class SlotStatus(StrEnum):
    BUSY = "busy"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class SlotHistory:
    """What an agent's slot remembers of its last run; whether it is busy is the ledger's."""

    last_run_id: str | None = None
    last_outcome: OutcomeKind | None = None
    last_log: str | None = None
    last_finished_at: float | None = None


def iso_utc(timestamp: float | None, precise: bool = False) -> str | None:
    """Unix seconds as ISO-8601 UTC with a ``Z``; ``precise`` keeps milliseconds."""
    if timestamp is None:
        return None
    second, micro = _split(timestamp)
    return f"{_utc_second(second)}.{micro // 1000:03d}Z" if precise \
        else f"{_utc_second(second)}Z"


def iso_utc_micro(timestamp: float) -> str:
    """``2025-10-25T05:00:00.123456Z``: UTC, always six digits after the second."""
    second, micro = _split(timestamp)
    return f"{_utc_second(second)}.{micro:06d}Z"


def _split(timestamp: float) -> tuple[int, int]:
    """Whole seconds and microseconds, rounded as ``datetime.fromtimestamp`` rounds them."""
    fraction, whole = math.modf(timestamp)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        return int(whole) + 1, micro - 1_000_000
    if micro < 0:
        return int(whole) - 1, micro + 1_000_000
    return int(whole), micro


@functools.lru_cache(maxsize=8)
def _utc_second(second: int) -> str:
    """The date and time of a whole second: the same few seconds are written many times."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_iso_utc(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


TriggerKey = tuple[int, int, str]  # (-priority, mtime_ns, name): smallest runs first


@dataclass(frozen=True, slots=True)
class QueuedTrigger:
    """A validated trigger waiting in the queue: only what ordering needs, the file keeps the rest.

    ``agent`` is the target: an agent name or a pool name. ``not_before`` holds a retry back;
    a retry waits in ``running/`` (``claimed``), where its last attempt left it.
    """

    name: str
    agent: str
    key: TriggerKey
    not_before: float = 0.0
    claimed: bool = False
    id: str = ""
    after: tuple[str, ...] = ()
    on_upstream_failure: str = "fail"
    dedupe_key: str | None = None

    def __lt__(self, other: QueuedTrigger) -> bool:
        """Heaps of queued triggers hold the records themselves, ordered by key (no tuple of
        key and record per trigger)."""
        return self.key < other.key
