"""``starforge queue list``: the pending triggers in the order the daemon will run them;
``starforge runs``: the archived ones whose run is over.

It reads the trigger folder and the slot table the way the daemon would and moves nothing, so
it works whether a daemon runs or not; without one it is the dry run of the next start.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starforge_daemon.core.models import parse_iso_utc
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.intake.triggers import (
    Accepted,
    NotReady,
    QueuedTrigger,
    Rejected,
    examine,
    is_trigger_name,
    read_trigger_file,
    scan,
)
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger
from starforge_daemon.store.atomic import read_json_object
from starforge_daemon.store.attempts import Attempts
from starforge_daemon.store.history import final_records
from starforge_daemon.store.instance import running_pid
from starforge_daemon.store.journal import JournalEntry, RunJournal
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import RESULT_SUFFIX, read_result
from starforge_daemon.store.slots import read_slots
from starforge_daemon.store.state import StateView, read_state

if TYPE_CHECKING:
    from starforge_daemon.store.settings import Settings


@dataclass(frozen=True)
class Pending:
    """A valid trigger in the queue and what it waits for.

    ``state`` is ``next`` (starts as soon as the daemon dispatches), ``queued`` (its agent is
    free but the run limit is reached) or ``waiting`` (its agent is busy, an older trigger
    for the same agent goes first, or triggers it comes ``after`` have not ended:
    ``waiting_for``); ``note`` says which.
    """

    position: int
    name: str
    id: str
    agent: str
    ticket: str | None
    action: str | None
    age_s: float | None
    state: str
    note: str
    waiting_for: list[str]


@dataclass(frozen=True)
class NotQueued:
    """A file in the queue folder that will not run as it is: ``invalid`` or ``unsettled``."""

    name: str
    kind: str
    reason: str


@dataclass(frozen=True)
class QueueListing:
    daemon_pid: int | None
    mode: str
    limit: int
    running: list[str]
    pending: list[Pending]
    not_queued: list[NotQueued]

    def to_json(self) -> dict[str, Any]:
        return {"daemon_running": self.daemon_pid is not None, "daemon_pid": self.daemon_pid,
                "mode": self.mode, "limit": self.limit, "running": self.running,
                "pending": [asdict(item) for item in self.pending],
                "not_queued": [asdict(item) for item in self.not_queued]}


def busy_agents(paths: ProjectPaths) -> list[str]:
    """Agents whose slot in ``agent-slots.json`` is busy (none when the file is unreadable)."""
    return sorted(agent for agent, slot in read_slots(paths.slots_file).items() if slot.busy)


def _details(paths: ProjectPaths, entry: QueuedTrigger,
             settings: Settings) -> tuple[str | None, str | None, float | None]:
    """Ticket, action and modification time, for display; a file that changed or vanished
    since it was judged shows none of them."""
    try:
        folder = paths.running if entry.claimed else paths.triggers
        data, info = read_trigger_file(folder / entry.name, settings.MAX_TRIGGER_BYTES,
                                       settings.ALLOW_FOREIGN_TRIGGERS)
        trigger = parse_trigger(data)
    except (InvalidTrigger, OSError):
        return None, None, None
    return trigger.ticket_text, trigger.action, info.st_mtime


@dataclass(frozen=True)
class Hold:
    """What keeps triggers from starting, as the files tell it."""

    busy: set[str]
    paused: set[str]
    paused_all: bool
    pools: dict[str, tuple[str, ...]]
    capacity: int


def plan(entries: list[QueuedTrigger], hold: Hold, now: float) -> list[tuple[str, str]]:
    """``(state, note)`` for each entry (in key order), found by running the daemon's own
    queue on a copy: what it would start now is ``next``, the rest say why they wait."""
    busy = set(hold.busy)
    queue = TriggerQueue(hold.pools, busy.__contains__)
    for target in hold.paused:
        queue.pause(target)
    for entry in entries:
        queue.add(entry)
    starting: set[str] = set()
    capacity = 0 if hold.paused_all else hold.capacity
    while capacity > 0 and (taken := queue.take_next(now)) is not None:
        starting.add(taken[0].name)
        busy.add(taken[1])
        capacity -= 1
    first_of: dict[str, int] = {}
    result = []
    for position, entry in enumerate(entries, 1):
        target = entry.agent
        members = hold.pools.get(target, (target,))
        if entry.name in starting:
            result.append(("next", ""))
        elif hold.paused_all or target in hold.paused:
            result.append(("waiting", "everything is paused" if hold.paused_all
                           else f"{target} is paused"))
        elif entry.not_before > now:
            result.append(("waiting", f"retry in {entry.not_before - now:.0f}s"))
        elif target in first_of:
            result.append(("waiting", f"after #{first_of[target]}"))
        elif all(member in hold.busy or member in hold.paused for member in members):
            result.append(("waiting", f"{target} is busy"))
        else:
            result.append(("queued", "run limit reached"))
        first_of.setdefault(target, position)
    return result


def _retries_waiting(paths: ProjectPaths, settings: Settings, now: float,
                     in_flight: set[str]) -> list[QueuedTrigger]:
    """Triggers waiting in ``running/`` for another attempt: an attempts record, no run going
    (``in_flight``: the names of the triggers whose run is going)."""
    attempts = Attempts(paths)
    try:
        names = sorted(scan(paths.running))
    except FileNotFoundError:
        return []
    waiting = []
    for name in names:
        if name in in_flight or not attempts.not_before(name):
            continue
        verdict = examine(paths.running / name, now, max_bytes=settings.MAX_TRIGGER_BYTES,
                          allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS, settle_seconds=0)
        if isinstance(verdict, Accepted):
            waiting.append(replace(verdict.entry, claimed=True))
    return waiting


def _on_deck(paths: ProjectPaths, settings: Settings, now: float,
             entries: list[JournalEntry]) -> list[QueuedTrigger]:
    """Triggers handed over to start behind the run going (``SEQUENTIAL_HANDOVER``): claimed,
    journalled, not spawned yet."""
    waiting = []
    for entry in entries:
        if entry.run.behind is None or entry.spawning or entry.agent or entry.ended:
            continue
        verdict = examine(Path(entry.run.trigger_path), now,
                          max_bytes=settings.MAX_TRIGGER_BYTES,
                          allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS, settle_seconds=0)
        if isinstance(verdict, Accepted):
            waiting.append(replace(verdict.entry, claimed=True))
    return waiting


def _judge_folder(paths: ProjectPaths, settings: Settings, now: float,
                  ) -> tuple[list[QueuedTrigger], list[NotQueued], set[str], set[str]]:
    """Every ``*.trigger``, retry waiting and trigger on deck, judged with the daemon's own
    rules: the valid ones in the daemon's order, the others, the ids of the triggers whose run
    is going or on deck (the journals, read once), and the names of those on deck."""
    entries = RunJournal(paths).entries()
    in_flight = [entry.run for entry in entries]
    accepted: list[QueuedTrigger] = []
    not_queued: list[NotQueued] = []
    try:
        names = sorted(scan(paths.triggers))
    except FileNotFoundError:
        names = []
    for name in names:
        verdict = examine(paths.triggers / name, now, max_bytes=settings.MAX_TRIGGER_BYTES,
                          allow_foreign=settings.ALLOW_FOREIGN_TRIGGERS,
                          settle_seconds=settings.TRIGGER_SETTLE_SECONDS)
        if isinstance(verdict, Accepted):
            accepted.append(verdict.entry)  # a file that vanished meanwhile (Gone) is skipped
        elif isinstance(verdict, NotReady):
            not_queued.append(NotQueued(name, "unsettled", "does not parse yet; probably still "
                                        "being written"))
        elif isinstance(verdict, Rejected):
            not_queued.append(NotQueued(name, "invalid", verdict.reason))
    accepted += _retries_waiting(paths, settings, now, {run.trigger_name for run in in_flight})
    on_deck = _on_deck(paths, settings, now, entries)
    accepted += on_deck
    accepted.sort(key=lambda entry: entry.key)
    return (accepted, not_queued, {run.trigger_ident for run in in_flight},
            {entry.name for entry in on_deck})


def dependency_waits(paths: ProjectPaths, settings: Settings, now: float) -> list[dict[str, Any]]:
    """Each pending trigger that waits for others: its name, its id and the ids it waits for."""
    accepted, _, running, _ = _judge_folder(paths, settings, now)
    blocked = waiting_upstreams(paths, accepted, running)
    return [{"trigger": entry.name, "id": entry.id, "waiting_for": blocked[entry.name]}
            for entry in accepted if entry.name in blocked]


def list_queue(paths: ProjectPaths, settings: Settings, now: float) -> QueueListing:
    """Judge every ``*.trigger`` with the daemon's own rules and order them like it does."""
    accepted, not_queued, running, on_deck = _judge_folder(paths, settings, now)
    pid = running_pid(paths)
    state = read_state(paths.state_file) if pid else StateView()
    limit = state.max_concurrent or settings.concurrency_limit
    mode = state.mode or ("parallel" if settings.PARALLEL_DAEMON else "sequential")
    busy = busy_agents(paths)
    attempts = Attempts(paths)
    accepted = [replace(entry, not_before=attempts.not_before(entry.name)) for entry in accepted]
    paused = read_json_object(paths.paused_file)
    hold = Hold(set(busy), set(paused.get("agents", [])), bool(paused.get("all")),
                settings.pools, max(0, limit - len(busy)))
    blocked = waiting_upstreams(paths, accepted, running)
    decisions = iter(plan([entry for entry in accepted
                           if entry.name not in blocked and entry.name not in on_deck], hold, now))
    pending = []
    for position, entry in enumerate(accepted, 1):
        upstreams = blocked.get(entry.name, [])
        if entry.name in on_deck:
            state_word, note = "next", "handed over: starts as the run before it ends"
        elif upstreams:
            state_word, note = "waiting", "waiting for " + ", ".join(upstreams)
        else:
            state_word, note = next(decisions)
        ticket, action, mtime = _details(paths, entry, settings)
        age = round(max(0.0, now - mtime), 1) if mtime is not None else None
        pending.append(Pending(position, entry.name, entry.id, entry.agent, ticket, action, age,
                               state_word, note, upstreams))
    return QueueListing(pid, mode, limit, busy, pending, not_queued)


def waiting_upstreams(paths: ProjectPaths, pending: list[QueuedTrigger],
                      running: set[str]) -> dict[str, list[str]]:
    """For each pending trigger that waits for others (``after``), the ids it waits for: those
    queued or ``running``, and those no trigger has had yet (``(not seen yet)``); one that
    ended is in the run history."""
    live = {entry.id for entry in pending} | running
    unseen = {upstream for entry in pending if not entry.claimed for upstream in entry.after
              if upstream not in live}
    unseen -= set(final_records(paths.history_file, unseen)) if unseen else set()
    blocked = {}
    for entry in pending:
        upstreams = [upstream if upstream in live else f"{upstream} (not seen yet)"
                     for upstream in entry.after if upstream in live or upstream in unseen]
        if upstreams and not entry.claimed:
            blocked[entry.name] = upstreams
    return blocked


@dataclass(frozen=True)
class Finished:
    """An archived trigger in ``processed/`` or ``processed/failed/``, as the result file
    beside it tells its run: ``agent`` ran it (or was its target, when it never ran), from
    ``pool`` when it went to a pool; ``ended_at`` is when it was archived if it never ran."""

    name: str
    failed: bool
    agent: str | None
    pool: str | None
    ticket: str | None
    outcome: str | None
    reason: str | None
    ended_at: str | None
    run_id: str | None
    log: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _finished(trigger: Path, failed: bool) -> Finished:
    result = read_result(trigger)
    target = read_json_object(trigger).get("to_agent")  # who it was for, when it never ran
    agent = result.agent or (target if isinstance(target, str) else None)
    return Finished(trigger.name, failed, agent, result.pool, result.ticket, result.outcome,
                    result.reason, result.ended_at or result.archived_at, result.run_id,
                    result.log)


def finished_triggers(paths: ProjectPaths, failed_only: bool = False,
                      agent: str | None = None) -> list[Finished]:
    """The archived triggers whose run is over (only the failed ones with ``failed_only``;
    only ``agent``'s, or its pool's, when given), oldest first."""
    folders = [(paths.failed, True)]
    if not failed_only:
        folders.insert(0, (paths.processed, False))
    found = []
    for folder, failed in folders:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        found += [_finished(folder / name, failed) for name in names
                  if is_trigger_name(name) and not name.endswith(RESULT_SUFFIX)]
    if agent is not None:
        found = [item for item in found if agent in (item.agent, item.pool)]
    return sorted(found, key=lambda item: (_seconds(item.ended_at), item.name))


def _seconds(when: str | None) -> float:
    try:
        return parse_iso_utc(when) or 0.0
    except ValueError:
        return 0.0
