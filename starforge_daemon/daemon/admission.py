"""Between the trigger folder and the queue: a trigger whose ``dedupe_key`` is held by a live
one is archived as a duplicate, and one with ``after`` waits here until its upstreams end,
then joins the queue or ends by its ``on_upstream_failure`` policy.

What it keeps is rebuilt at every start from the files: waiting triggers are still in the
trigger folder, runs in flight in the journal, and how an upstream ended in the run history.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starforge_daemon.core.dependencies import Dependencies, Ended, Refuse, Release, Wait
from starforge_daemon.core.dependency_events import Duplicate, EndedUnrun, Waiting
from starforge_daemon.core.events import Publisher, Queued, Rejected
from starforge_daemon.core.holds import Holds
from starforge_daemon.core.models import OutcomeKind, QueuedTrigger, assigned_id
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.daemon.archivist import Archivist
from starforge_daemon.daemon.finisher import files_refused
from starforge_daemon.store.results import NoRun, ResultRecord, read_result


class Admission:
    def __init__(self, queue: TriggerQueue, archivist: Archivist, holds: Holds,
                 events: Publisher, triggers: Path, wait_limit: float) -> None:
        self.queue = queue
        self.archivist = archivist
        self.holds = holds
        self.events = events
        self.triggers = triggers
        self.dependencies = Dependencies(wait_limit)
        self._keys: dict[str, tuple[str, str]] = {}  # dedupe key -> (id, trigger) holding it
        self._key_of: dict[str, str] = {}  # id -> its dedupe key
        self._unrun: list[Refuse] = []  # to archive, in order
        self._not_in_history: set[str] = set()
        self._released = False  # since the last settle
        archivist.on_ended = self._ended

    def __contains__(self, name: object) -> bool:
        """Queued or waiting: the trigger reader leaves these alone."""
        return name in self.queue or name in self.dependencies

    def track(self, trigger_id: str, dedupe_key: str | None, name: str) -> None:
        """A trigger queued or running without passing here (recovered, or a retry)."""
        self.dependencies.live(trigger_id)
        self._hold_key(trigger_id, dedupe_key, name)

    def admit(self, entries: list[QueuedTrigger], now: float) -> None:
        """New triggers from the folder, oldest first; those that end unrun are archived by
        the next :meth:`settle`."""
        self._look_up(entry for entry in entries if entry.after)
        for entry in entries:
            holder = self._keys.get(entry.dedupe_key) if entry.dedupe_key else None
            if holder is not None:
                self._duplicate(entry, holder, now)
                continue
            self._hold_key(entry.id, entry.dedupe_key, entry.name)
            decision = self.dependencies.arrive(entry)
            if isinstance(decision, Wait):
                self.events.publish(Waiting(entry.name, entry.id, decision.waiting_for))
            else:
                self._apply(decision)

    def withdraw(self, name: str) -> QueuedTrigger | None:
        """Take a queued or waiting trigger out (cancelled); archiving it ends it."""
        return self.queue.remove(name) or self.dependencies.withdraw(name)

    def settle(self, now: float) -> bool:
        """Archive what ended unrun (each may end others: one after another, not nested);
        while the files refuse, they wait and are tried again with the hold's probes. True
        when triggers joined the queue since the last call (their agents may be free now)."""
        self._unrun.extend(self.dependencies.expired(now))
        released, self._released = self._released, False
        if self._unrun and self.holds.disk_error is not None and not self.holds.probe_due(now):
            return released
        while self._unrun:
            refused = self._unrun[0]
            entry = refused.entry
            result = NoRun(entry.name, refused.kind, refused.reason, entry.id)
            try:
                archived = self.archivist.put(self.triggers / entry.name, entry.name,
                                              result.to_dict(), now)
            except FileNotFoundError:
                self.archivist.lost_file(result.to_dict())
                archived = None
            except OSError as error:
                files_refused(self.holds, self.events, error, now, "a trigger ending unrun waits")
                break
            self._unrun.pop(0)
            self.events.publish(EndedUnrun(entry.name, entry.id, refused.kind.value,
                                           refused.reason, str(archived)))
        released, self._released = released or self._released, False
        return released

    def next_due(self) -> float | None:
        return self.dependencies.next_due()

    def upstream_results(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """What each upstream's result says, for the run that waited for them."""
        ids = list(ids)
        missing = {upstream for upstream in ids if self.dependencies.ended_as(upstream) is None}
        from_history = self.archivist.history.final_records(missing) if missing else {}
        results = []
        for upstream in ids:
            ended = self.dependencies.ended_as(upstream)
            record = read_result(Path(ended.archived_as)) if ended and ended.archived_as \
                else from_history.get(upstream, ResultRecord())
            results.append({"id": upstream, "trigger": record.trigger, "agent": record.agent,
                            "outcome": record.outcome or (ended.outcome if ended else None),
                            "reason": record.reason or (ended.reason if ended else None),
                            "exit_code": record.exit_code, "run_id": record.run_id,
                            "log": record.log, "result_text": record.result_text,
                            "session_id": record.session_id})
        return results

    def _apply(self, decision: Release | Refuse) -> None:
        if isinstance(decision, Release):
            self._released = True
            self.queue.add(decision.entry)
            self.events.publish(Queued(decision.entry.name, decision.entry.agent, len(self.queue)))
        else:
            self._unrun.append(decision)

    def _ended(self, record: dict[str, Any], archived_as: str | None) -> None:
        """A trigger that had been admitted was archived: release its key, tell its waiters."""
        trigger_id = record.get("id")
        if not isinstance(trigger_id, str):
            return
        ended = Ended(str(record.get("outcome")), str(record.get("reason")), archived_as)
        for decision in self.dependencies.ended(trigger_id, ended):
            self._apply(decision)
        if not self.dependencies.is_live(trigger_id):
            key = self._key_of.pop(trigger_id, None)
            if key is not None and self._keys.get(key, ("",))[0] == trigger_id:
                del self._keys[key]

    def _hold_key(self, trigger_id: str, dedupe_key: str | None, name: str) -> None:
        if dedupe_key is not None:
            self._keys.setdefault(dedupe_key, (trigger_id, name))
            self._key_of[trigger_id] = dedupe_key

    def reject(self, name: str, reason: str, now: float) -> None:
        """Archive a trigger refused at intake to ``processed/invalid/`` with the reason."""
        self._archive_unadmitted(name, OutcomeKind.INVALID, reason, assigned_id(name), now)

    def _duplicate(self, entry: QueuedTrigger, holder: tuple[str, str], now: float) -> None:
        original_id, original = holder
        reason = (f"duplicate: dedupe_key {entry.dedupe_key!r} is held by {original} "
                  f"(id {original_id}), still waiting or running")
        archived = self._archive_unadmitted(entry.name, OutcomeKind.DUPLICATE, reason, entry.id,
                                            now)
        if archived is not None:
            self.events.publish(Duplicate(entry.name, entry.id, original_id, str(archived)))

    def _archive_unadmitted(self, name: str, kind: OutcomeKind, reason: str, trigger_id: str,
                            now: float) -> str | None:
        """Archive a trigger that never joined the queue. Its id is on record only when no live
        trigger has it (a resent handoff with the original's id does not end the original);
        then those waiting for that id are told."""
        shared = self.dependencies.is_live(trigger_id)
        result = NoRun(name, kind, reason, None if shared else trigger_id).to_dict()
        try:
            archived = self.archivist.put(self.triggers / name, name, result, now,
                                          admitted=False)
        except FileNotFoundError:
            return None
        except OSError as error:  # it stays in the folder: the next scan judges it again
            files_refused(self.holds, self.events, error, now, "a refused trigger waits")
            return None
        if not shared:
            self._ended(result, str(archived))
        if kind is OutcomeKind.INVALID:
            self.events.publish(Rejected(name, reason))
        return archived

    def _look_up(self, entries: Iterable[QueuedTrigger]) -> None:
        """Upstreams neither live nor remembered, found in the run history (once each)."""
        missing = {upstream for entry in entries for upstream in self.dependencies.unknown(entry)
                   if upstream not in self._not_in_history}
        if not missing:
            return
        found = self.archivist.history.final_records(missing)
        for upstream, record in found.items():
            self.dependencies.remember(upstream, Ended(str(record.outcome), str(record.reason),
                                                       record.archived_as))
        self._not_in_history |= missing - found.keys()
