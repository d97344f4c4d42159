"""Notifications (``NOTIFY_URLS``, ``NOTIFY_ON``, ``NOTIFY_PROGRESS_EVERY``,
``ON_FINISH_COMMAND``): an observer that only hands notices and archived runs to the delivery
threads, and two upkeeps on the loop: long runs' progress, and the delivery's health (logged
once per spell, shown by ``starforge daemon status``). See docs/notifications.md."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from starforge_daemon.core import events as ev
from starforge_daemon.core.ledger import Ledger
from starforge_daemon.core.notice_kinds import NoticeKind, parse_kinds, split_urls
from starforge_daemon.core.notices import notice_of
from starforge_daemon.daemon.engine import Engine
from starforge_daemon.daemon.observers.delivery import Deliverer, Health, Sender
from starforge_daemon.daemon.observers.finish_command import FinishCommands
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import Settings

STOP_GRACE = 5.0  # seconds what waits gets to go out when the daemon stops


class NotifyObserver:
    """Quick, on the loop's thread: an event becomes a notice on the deliverer's queue, an
    archived run a job on the finish command's."""

    def __init__(self, enabled: frozenset[NoticeKind], deliverer: Deliverer | None,
                 commands: FinishCommands | None) -> None:
        self._enabled = enabled
        self._deliverer = deliverer
        self._commands = commands

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Archived):
            if self._commands is not None:
                self._commands.put(event)
        elif self._deliverer is not None:
            notice = notice_of(event, self._enabled)
            if notice is not None:
                self._deliverer.put(notice)


def long_runs(ledger: Ledger, now: float, longer_than: float) -> list[ev.StillRunning]:
    """The runs going for at least ``longer_than`` seconds, with what they last reported."""
    found = []
    for state in ledger:
        run = state.run
        if now - run.started_at < longer_than:
            continue
        live = ledger.live(run.run_id)
        found.append(ev.StillRunning(run.agent, run.ticket, run.run_id,
                                     round(now - run.started_at, 1),
                                     live.progress.tool if live else None,
                                     live.progress.cost_usd if live else None))
    return found


@dataclass
class Notifications:
    deliverer: Deliverer | None
    commands: FinishCommands | None
    health: Health

    def follow_health(self, engine: Engine) -> None:
        """On the loop: log each spell of failures once, and show the last error."""
        for report in self.health.take_reports():
            engine.events.publish(report)
        engine.saved.notify_failing(self.health.last_error)

    def close(self, engine: Engine) -> None:
        """At the daemon's stop: what waits goes out (within STOP_GRACE), then the threads end."""
        for worker in (self.deliverer, self.commands):
            if worker is not None:
                worker.close(STOP_GRACE)
        self.follow_health(engine)


def install_notifications(paths: ProjectPaths, settings: Settings, engine: Engine,
                          env: Mapping[str, str]) -> Notifications | None:
    """Start the delivery threads and subscribe their observer; None when nothing is set.
    Raises NotifySetupError for a URL Apprise cannot send to (asked of the sender process)."""
    urls = split_urls(settings.NOTIFY_URLS)
    words = shlex.split(settings.ON_FINISH_COMMAND)
    if not urls and not words:
        return None
    health = Health()
    deliverer = None
    if urls:
        sender = Sender(urls)
        deliverer = Deliverer(sender, sender.check(), settings.NOTIFY_MIN_INTERVAL,
                              paths.root.name, health)
    commands = FinishCommands(words, paths.root, env, health) if words else None
    notifications = Notifications(deliverer, commands, health)
    engine.events.subscribe(NotifyObserver(parse_kinds(settings.NOTIFY_ON), deliverer, commands))

    def follow_notify_health(_now: float) -> None:
        notifications.follow_health(engine)

    engine.upkeep.every(settings.PROCESS_MONITOR_INTERVAL, follow_notify_health)
    every = settings.NOTIFY_PROGRESS_EVERY
    if every is not None and deliverer is not None:
        def tell_progress(now: float) -> None:
            for still in long_runs(engine.ledger, now, every):
                engine.events.publish(still)

        engine.upkeep.every(every, tell_progress)
    return notifications
