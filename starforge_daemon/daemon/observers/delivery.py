"""Sending notices with Apprise, from a thread of its own: the loop only puts them on a bounded
queue. Each message goes to every ``NOTIFY_URLS`` target, tried again after 0.5, 1 and 2 seconds;
a target that keeps failing is reported once per spell (:class:`Health`).

Apprise is imported only here, by a daemon that has URLs and by ``starforge notify test``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

from starforge_daemon.core.events import NotifyFailed, NotifyWorks
from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.notices import Notice, Throttle

RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each further try of one message
QUEUE_SIZE = 1000  # notices waiting for the thread; more are dropped, and counted


class NotifySetupError(ValueError):
    """A ``NOTIFY_URLS`` URL that Apprise cannot send to; the message names it."""


class Health:
    """Which targets fail, kept by the delivery threads and read by the loop: each spell of
    failures is one report (``NotifyFailed``, later ``NotifyWorks``), and ``last_error`` is
    the latest failure while any target fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self._reports: deque[NotifyFailed | NotifyWorks] = deque()
        self.last_error: str | None = None

    def failed(self, target: str, error: str) -> None:
        with self._lock:
            if target not in self._failing:
                self._reports.append(NotifyFailed(target, error))
            self._failing[target] = error
            self.last_error = f"{iso_utc(time.time())} {target}: {error}"

    def worked(self, target: str) -> None:
        with self._lock:
            if self._failing.pop(target, None) is not None:
                self._reports.append(NotifyWorks(target))
                if not self._failing:
                    self.last_error = None

    def take_reports(self) -> list[NotifyFailed | NotifyWorks]:
        with self._lock:
            reports = list(self._reports)
            self._reports.clear()
        return reports


class AppriseTarget:
    """One ``NOTIFY_URLS`` URL as Apprise sends to it; ``name`` hides its secrets."""

    def __init__(self, url: str) -> None:
        import apprise

        self._plugin = apprise.Apprise.instantiate(url)
        if self._plugin is None:
            raise NotifySetupError(f"NOTIFY_URLS: Apprise cannot send to {url.split('://')[0]}:// "
                                   "URLs like this one (unknown service, or a part missing)")
        self.name: str = self._plugin.url(privacy=True).partition("?")[0]

    def send(self, title: str, body: str) -> str | None:
        """None when the target took the message, else what went wrong."""
        import apprise

        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:
            try:
                if self._plugin.notify(body=body, title=title):
                    return None
            except Exception as error:  # a plugin's bug must not end the thread
                return f"{type(error).__name__}: {error}"
            lines = said.getvalue().strip().splitlines()
        return lines[-1] if lines else "not delivered"


class Deliverer:
    """Sends notices to every target, one message per kind per ``interval`` (the rest grouped,
    :class:`Throttle`), from its own thread. ``put`` never blocks: a full queue drops the
    notice, and the next message says how many were dropped."""

    def __init__(self, targets: list[AppriseTarget], interval: float, project: str,
                 health: Health) -> None:
        self.targets = targets
        self._project = project
        self._health = health
        self._queue: queue.Queue[Notice | None] = queue.Queue(QUEUE_SIZE)
        self._throttle = Throttle(interval)
        self._closing = threading.Event()
        self.dropped = 0  # counted by the loop's thread
        self._told_dropped = 0  # by this one
        self._thread = threading.Thread(target=self._serve, name="notify", daemon=True)
        self._thread.start()

    def put(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self.dropped += 1

    def close(self, grace: float) -> None:
        """Send what waits (grouped messages too) within ``grace`` seconds, then stop: no
        retries after this."""
        self._closing.set()
        deadline = time.monotonic() + grace
        try:
            self._queue.put(None, timeout=grace)
        except queue.Full:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _serve(self) -> None:
        while True:
            due = self._throttle.next_due()
            try:
                item: Notice | bool | None = self._queue.get(
                    timeout=None if due is None else max(0.0, due - time.time()))
            except queue.Empty:
                item = False  # only a grouped message fell due
            now = time.time()
            messages = self._throttle.due(now, flush=item is None)
            if isinstance(item, Notice) and (now_too := self._throttle.offer(item, now)):
                messages.append(now_too)
            for message in messages:
                try:
                    self._deliver(message)
                except Exception as error:  # the thread must outlive any one message
                    self._health.failed("notifications", f"{type(error).__name__}: {error}")
            if item is None:
                return

    def _deliver(self, notice: Notice) -> None:
        body = notice.body
        dropped = self.dropped - self._told_dropped
        if dropped:
            self._told_dropped += dropped
            body += f"\n({dropped} notices were dropped: too many at once)"
        title = f"starforge {self._project}: {notice.title}"
        for target in self.targets:
            error = target.send(title, body)
            for delay in RETRY_DELAYS:
                if error is None or self._closing.wait(delay):
                    break
                error = target.send(title, body)
            if error is None:
                self._health.worked(target.name)
            else:
                self._health.failed(target.name, error)
