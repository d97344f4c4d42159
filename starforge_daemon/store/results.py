"""Archived triggers with their results: ``<name>.result.json`` beside each archived trigger,
the same line in the run history."""

from __future__ import annotations

import errno
import functools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from starforge_daemon.core.models import (
    ArchiveFolder,
    Outcome,
    OutcomeKind,
    ProcessIdentity,
    Run,
    RunExit,
    flat_dict,
    folder_for,
    iso_utc,
)
from starforge_daemon.core.streams import Summary
from starforge_daemon.store.atomic import (
    candidate_names,
    json_line,
    read_json_object,
    rename_noreplace,
    write_new,
)
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.views import typed, view_of

RESULT_SUFFIX = ".result.json"


def result_path(archived: Path) -> Path:
    return archived.with_name(archived.name + RESULT_SUFFIX)


class Archive:
    """Moves a trigger into its archive folder, its result file written first beside it.

    The result is written before the rename, so an archived trigger always has its reason on
    disk; a crash between the two leaves the trigger where it was, to be archived again.
    """

    def __init__(self, paths: ProjectPaths) -> None:
        self._folders = {which: (paths.processed / which.value).resolve() for which in ArchiveFolder}
        # as text: each archived trigger joins a name to one (a Path join costs microseconds)
        self._folder_texts = {which: str(folder) for which, folder in self._folders.items()}

    def folder(self, which: ArchiveFolder) -> Path:
        return self._folders[which]

    def put(self, source: str | Path, name: str, result: dict[str, Any], now: float,
            ) -> ArchivedTrigger:
        """Archive ``source`` (named ``name`` in the queue) with ``result`` beside it."""
        which = folder_for(OutcomeKind(result["outcome"]))
        folder = self._folder_texts[which]
        archived_at = iso_utc(now, precise=True)
        for candidate in candidate_names(name, room=len(RESULT_SUFFIX)):
            target = f"{folder}/{candidate}"
            line = json_line({**result, "archived_at": archived_at, "archived_as": target})
            if not self._put_result(which, target, line):
                continue
            try:
                rename_noreplace(source, target)
            except FileExistsError:  # a trigger archived there lost its result file
                os.unlink(target + RESULT_SUFFIX)
                continue
            except BaseException:
                Path(target + RESULT_SUFFIX).unlink(missing_ok=True)
                raise
            return ArchivedTrigger(target, line)
        raise FileExistsError(f"no free name for {name} in {folder}")

    def _put_result(self, which: ArchiveFolder, target: str, line: bytes) -> bool:
        """Write the result file of a trigger to be archived as ``target``; False when that
        name is taken (by an archived trigger, or a link planted there)."""
        path = target + RESULT_SUFFIX
        try:
            write_new(path, line, exclusive=True)  # the common case: one call, no lookup
            return True
        except FileExistsError:
            if os.path.lexists(target):  # that trigger's own result
                return False
        except FileNotFoundError:  # the folder was removed by hand
            self._folders[which].mkdir(parents=True, exist_ok=True)
        try:
            write_new(path, line)  # a file left by a crash mid-archive is replaced
        except OSError as error:
            if error.errno == errno.ELOOP:  # a link planted there
                return False
            raise
        return True


@dataclass(frozen=True)
class ArchivedTrigger:
    """Where a trigger was archived, and its result as one line (its result file's content and
    its line in the run history)."""

    path: str
    line: bytes


@dataclass(frozen=True)
class RunAccount:
    """A run's own account, read from its output (all None for a run that gave none): the last
    keys of a result, as :class:`RunResult` writes them and :class:`ResultRecord` reads them."""

    session_id: str | None = None
    model: str | None = None
    turns: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cost_usd: float | None = None
    result_text: str | None = None
    permission_denials: int | None = None
    api_error_status: int | None = None
    terminal_reason: str | None = None
    skipped_lines: int | None = None


@dataclass(frozen=True)
class RunFacts:
    """What the daemon knows of a finished run: the first keys of a result."""

    trigger: str
    id: str | None
    outcome: str
    reason: str | None
    exit_code: int | None
    run_id: str
    agent: str
    pool: str | None
    attempt: int
    ticket: str | None
    action: str | None
    from_agent: str | None
    pid: int | None
    started_at: str
    ended_at: str
    duration_s: float
    log: str
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass(frozen=True)
class RunResult(RunAccount, RunFacts):
    """What is recorded about a finished run: its result file, its attempts record and its
    history line (the archive and the history add a few keys of their own). Field order is
    the order of the JSON keys: the facts, then the account."""

    @classmethod
    def of(cls, run: Run, agent: ProcessIdentity | None, outcome: Outcome, ended_at: float,
           ended: RunExit | None = None) -> RunResult:
        return cls(trigger=run.trigger_name, id=run.trigger_ident, outcome=outcome.kind.value,
                   reason=outcome.reason, exit_code=outcome.exit_code, run_id=run.run_id, agent=run.agent,
                   pool=run.pool, attempt=run.attempt, ticket=run.ticket, action=run.action,
                   from_agent=run.from_agent, pid=agent.pid if agent else None,
                   started_at=iso_utc(run.started_at, precise=True),
                   ended_at=iso_utc(ended_at, precise=True),
                   duration_s=round(max(0.0, ended_at - run.started_at), 3), log=run.log_path,
                   cpu_seconds=ended.cpu_seconds if ended else None,
                   peak_memory_bytes=ended.peak_memory_bytes if ended else None,
                   **_own_account(ended.stream if ended else None))

    def to_dict(self) -> dict[str, Any]:
        return flat_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**{field.name: data.get(field.name) for field in fields(cls)})


def _own_account(stream: Summary | None) -> dict[str, Any]:
    """The result's fields from what the run reported of itself (none for plain output): the
    fields the two records share."""
    if stream is None:
        return {}
    return {name: getattr(stream, name) for name in _shared_fields()}


@functools.cache
def _shared_fields() -> tuple[str, ...]:
    return tuple(name for name in Summary._fields if name in RunAccount.__annotations__)


@dataclass(frozen=True)
class NoRun:
    """The result of a trigger archived without a run: rejected before it, or cancelled."""

    trigger: str
    outcome: OutcomeKind
    reason: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "id": self.id, "outcome": self.outcome.value,
                "reason": self.reason, "exit_code": None}


@dataclass(frozen=True)
class ResultFacts:
    """The keys of :class:`RunFacts` as a client reads them (a trigger that never ran has only
    the first five, see :class:`NoRun`)."""

    trigger: str | None = None
    id: str | None = None
    outcome: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    run_id: str | None = None
    agent: str | None = None
    pool: str | None = None
    attempt: int | None = None
    ticket: str | None = None  # older files: a number, read as its text
    action: str | None = None
    from_agent: str | None = None
    pid: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    log: str | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass(frozen=True)
class ResultRecord(RunAccount, ResultFacts):
    """A result file or a line of the run history as a client reads it: the keys of
    :class:`RunResult` and those the archive and the history add, each as saved, or None when
    it is missing or of another type. Never raises: the file may be of another version, or
    damaged."""

    archived_at: str | None = None  # result files: when the trigger was archived
    archived_as: str | None = None  # history lines of archived runs: where the trigger went
    retry_at: str | None = None  # history lines of runs tried again: the next attempt's time
    attempts: tuple[ResultRecord, ...] = ()  # result files of retried triggers: every attempt

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRecord:
        attempts = data.get("attempts")
        return view_of(cls, data, ticket=_ticket_text(data.get("ticket")),
                       attempts=tuple(cls.from_dict(attempt) for attempt in attempts
                                      if isinstance(attempt, dict))
                       if isinstance(attempts, list) else ())


def _ticket_text(value: Any) -> str | None:
    """A saved ticket as text; older files hold a number."""
    if isinstance(value, str):
        return value
    number = typed(value, int)
    return None if number is None else str(number)


def read_result(archived: Path) -> ResultRecord:
    """The result beside an archived trigger; an empty record when it is missing or unreadable."""
    return ResultRecord.from_dict(read_json_object(result_path(archived)))
