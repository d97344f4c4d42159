"""One run at a time, handed over ahead: while the one run goes, the next triggers are claimed
and given to the runner, each to start the moment the run before it ends (``LaunchSpec.after``),
so a start does not wait for the daemon to hear of the end and answer.

Only where nothing learned at a run's end changes what starts next: runs whose output is read
as text (no cost, rate limit or session is read from it), no daily budget, no worktrees, and a
runner that hands over; at most ``SEQUENTIAL_HANDOVER`` runs (two by default: the second covers
the time the daemon takes to answer an end). Runs on deck count against the concurrency limit
and show as busy once started. They are withdrawn (their triggers wait in the queue again,
claimed) when they would no longer start next: a stop, a pause, a hold, an operator's request
that changes something, a trigger that outranks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from starforge_daemon.core.ledger import Launching, Ledger
from starforge_daemon.core.models import QueuedTrigger, Run
from starforge_daemon.core.queue import TriggerQueue
from starforge_daemon.runtime.api import Runner
from starforge_daemon.store.journal import RunJournal


@dataclass(frozen=True)
class OnDeck:
    run: Run
    entry: QueuedTrigger  # as it waits again if withdrawn: claimed, under its claimed name
    withdrawing: bool = False


class HandOver:
    """The runs on deck, in the order they start: each behind the one before it, the first
    behind the run in flight."""

    def __init__(self, runner: Runner, ledger: Ledger, queue: TriggerQueue,
                 journal: RunJournal, *, depth: int) -> None:
        self._runner = runner
        self._ledger = ledger
        self._queue = queue
        self._journal = journal
        self._depth = depth  # runs on deck at most
        self.on_deck: list[OnDeck] = []

    def __len__(self) -> int:
        return len(self.on_deck)

    def behind(self) -> Run | None:
        """The run that a next one may be handed over to start behind: the last on deck, else
        the one run in flight."""
        if len(self.on_deck) >= self._depth or len(self._ledger) > 1 \
                or any(deck.withdrawing for deck in self.on_deck):
            return None
        last = self.on_deck[-1].run if self.on_deck else next(
            (state.run for state in self._ledger), None)
        return last if last is not None and self._runner.can_follow(last.run_id) else None

    def put(self, run: Run, entry: QueuedTrigger) -> None:
        """``run`` was launched behind ``run.behind``."""
        self.on_deck.append(OnDeck(run, replace(entry, name=os.path.basename(run.trigger_path),
                                                claimed=True)))

    def board(self, run_id: str, now: float) -> None:
        """A run on deck started (or ended without starting): it joins the runs in flight, as
        begun now."""
        deck = self._take(run_id)
        if deck is not None:
            self._ledger.add(Launching(deck.run.begun_by(now)))

    def review(self, keep: bool, now: float) -> None:
        """Withdraw the runs on deck unless ``keep`` (nothing holds new runs back) and the
        queue would still start each next."""
        if keep and all(self._queue.may_start(deck.entry, deck.run.agent, now)
                        for deck in self.on_deck):
            return
        for index, deck in enumerate(self.on_deck):
            if not deck.withdrawing:
                self.on_deck[index] = replace(deck, withdrawing=True)
                self._runner.withdraw(deck.run.run_id)

    def withdrawn(self, run_id: str) -> None:
        """The runner took the run back before it started: its trigger waits again."""
        deck = self._take(run_id)
        if deck is not None:
            self._journal.done(run_id)
            self._queue.add(deck.entry)

    def _take(self, run_id: str) -> OnDeck | None:
        for index, deck in enumerate(self.on_deck):
            if deck.run.run_id == run_id:
                return self.on_deck.pop(index)
        return None
