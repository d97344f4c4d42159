"""What the daemon tells people (``NOTIFY_URLS``): which events make a notice, its words, and
how a burst of notices of one kind becomes one message (``NOTIFY_MIN_INTERVAL``). Pure: the
delivery (Apprise, its own thread) is in ``daemon/observers/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starforge_daemon.core import events as ev
from starforge_daemon.core.durations import duration_text
from starforge_daemon.core.models import OutcomeKind
from starforge_daemon.core.notice_kinds import NoticeKind


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    title: str  # one line, shown alone where there is room for one (a push notification)
    body: str


_RUN_KINDS = {OutcomeKind.SUCCEEDED.value: NoticeKind.SUCCEEDED,
              OutcomeKind.TIMED_OUT.value: NoticeKind.TIMED_OUT,
              OutcomeKind.STALLED.value: NoticeKind.STALLED}
_NOT_TOLD = {OutcomeKind.KILLED.value, OutcomeKind.CANCELLED.value}  # the operator's own doing


def _run_kind(event: ev.Finished, enabled: frozenset[NoticeKind]) -> NoticeKind | None:
    if event.outcome in _NOT_TOLD or (event.retry_at and event.outcome
                                      == OutcomeKind.RATE_LIMITED.value):  # told as held
        return None
    kind = _RUN_KINDS.get(event.outcome, NoticeKind.FAILED)
    return NoticeKind.DEAD_LETTER if event.dead_letter and NoticeKind.DEAD_LETTER in enabled \
        else kind


def _on_ticket(ticket: str | None) -> str:
    return f" on ticket {ticket}" if ticket else ""


def _see(run: str) -> str:
    return f"see it: starforge logs --run {run}"


def _finished(event: ev.Finished, kind: NoticeKind) -> Notice:
    what = {NoticeKind.DEAD_LETTER: f"gave up after {event.attempt} attempts",
            NoticeKind.TIMED_OUT: "timed out"}.get(kind, event.outcome.replace("_", " "))
    cost = f", cost ${event.cost_usd:.4f}" if event.cost_usd is not None else ""
    lines = [f"outcome: {event.outcome}" + (f": {event.reason}" if event.reason else ""),
             f"duration: {duration_text(event.duration_s)}{cost}, attempt {event.attempt}"]
    if event.retry_at:
        lines.append(f"tried again at {event.retry_at}")
    lines += [f"log: {event.log}", _see(event.run)]
    return Notice(kind, f"{event.agent} {what}{_on_ticket(event.ticket)}", "\n".join(lines))


def notice_of(event: ev.Event, enabled: frozenset[NoticeKind]) -> Notice | None:
    """The notice ``event`` makes when its kind is ``enabled`` (progress: always), or None."""
    notice = _notice(event, enabled)
    return notice if notice is not None and (notice.kind in enabled
                                             or notice.kind is NoticeKind.PROGRESS) else None


def _notice(event: ev.Event, enabled: frozenset[NoticeKind]) -> Notice | None:
    match event:
        case ev.Finished():
            kind = _run_kind(event, enabled)
            return None if kind is None else _finished(event, kind)
        case ev.StillRunning():
            tool = f"; doing: {event.tool}" if event.tool else ""
            cost = f"; cost so far ${event.cost_usd:.4f}" if event.cost_usd is not None else ""
            return Notice(NoticeKind.PROGRESS, f"{event.agent} still running"
                          f"{_on_ticket(event.ticket)}",
                          f"running for {duration_text(event.elapsed_s)}{tool}{cost}\n"
                          f"{_see(event.run)}")
        case ev.Held():
            return Notice(NoticeKind.HELD, "new runs held",
                          f"not starting new runs: {event.reason}; {event.queued} queued")
        case ev.MayHaveRun():
            return Notice(NoticeKind.FAILED, f"{event.trigger}: may have run, not run again",
                          f"{event.reason}\nafter a crash nothing tells whether its run "
                          f"started; run it again: starforge retry {event.trigger}")
        case ev.Adopted():
            return Notice(NoticeKind.ADOPTED, f"{event.agent}: run adopted after a restart",
                          f"run {event.run} (pid {event.pid}) was still going when this "
                          f"daemon started; it is followed to its end\n{_see(event.run)}")
        case ev.Drained():
            return Notice(NoticeKind.QUEUE_DRAINED, "queue drained",
                          "nothing is queued or running")
        case ev.Ready():
            return Notice(NoticeKind.DAEMON_START, "daemon started",
                          f"pid {event.pid}; {event.queued} queued, {event.running} running")
        case ev.Stopped():
            handoff = event.mode == "handoff"
            return Notice(NoticeKind.DAEMON_STOP, "daemon handed over" if handoff
                          else "daemon stopped", "running agents were left for the next "
                          "daemon" if handoff else "it stopped its running agents")
        case ev.Crashed():
            lines = event.error.strip().splitlines()
            return Notice(NoticeKind.DAEMON_STOP, "daemon crashed",
                          lines[-1] if lines else "see .claude/logs/daemon.log")
    return None


GROUP_SHOWN = 20  # lines of a grouped message; the rest are only counted


@dataclass
class _Spell:
    """A kind's notices since its last message: held back until ``last_sent + interval``."""

    last_sent: float
    count: int = 0
    titles: list[str] = field(default_factory=list)


class Throttle:
    """At most one message per kind per ``interval`` seconds: the first notice of a kind goes
    out at once, those after it within the interval go out together when it ends."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._spells: dict[NoticeKind, _Spell] = {}

    def offer(self, notice: Notice, now: float) -> Notice | None:
        """The notice to send now, or None when it waits for its kind's grouped message."""
        spell = self._spells.get(notice.kind)
        if spell is None or (not spell.count and now >= spell.last_sent + self.interval):
            self._spells[notice.kind] = _Spell(now)
            return notice
        spell.count += 1
        if len(spell.titles) < GROUP_SHOWN:
            spell.titles.append(notice.title)
        return None

    def due(self, now: float, flush: bool = False) -> list[Notice]:
        """The grouped messages whose interval has ended (``flush``: all of them, at stop)."""
        grouped = []
        for kind, spell in list(self._spells.items()):
            if spell.count and (flush or now >= spell.last_sent + self.interval):
                more = spell.count - len(spell.titles)
                body = "\n".join(spell.titles + ([f"... and {more} more"] if more else []))
                grouped.append(Notice(kind, f"{spell.count} more: {kind.value}", body))
                self._spells[kind] = _Spell(now)
            elif not spell.count and now >= spell.last_sent + self.interval:
                del self._spells[kind]  # nothing held: the next one goes out at once
        return grouped

    def next_due(self) -> float | None:
        return min((spell.last_sent + self.interval for spell in self._spells.values()
                    if spell.count), default=None)
