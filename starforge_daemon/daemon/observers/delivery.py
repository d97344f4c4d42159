"""Sending notices from a thread of its own: the loop only puts them on a bounded queue. The
thread hands each batch of due messages to a short-lived sender process (Apprise lives there,
:mod:`starforge_daemon.daemon.notify_sender`, never in the daemon), which sends each message to
every ``NOTIFY_URLS`` target, tried again after 0.5, 1 and 2 seconds; a target that keeps failing
is reported once per spell (:class:`Health`).
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from starforge_daemon.core.events import NotifyFailed, NotifyWorks
from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.notices import Notice, Throttle
from starforge_daemon.daemon.notify_sender import NotifySetupError

SENDER = (sys.executable, "-m", "starforge_daemon.daemon.notify_sender")
SEND_TIMEOUT = 60.0  # seconds for the sender to start, and for each message to each target
RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each further try of one message
QUEUE_SIZE = 1000  # notices waiting for the thread; more are dropped, and counted


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


class Sender:
    """Runs the sender process, one batch at a time, without a shell and within a time limit;
    :meth:`kill` ends the one running and refuses further batches (the daemon is stopping)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._killed = False

    def check(self) -> list[str]:
        """The targets' names (secrets hidden); raises NotifySetupError for a URL Apprise
        cannot send to, or when the sender cannot run at all."""
        answers, problem = self.run([], ())
        refused = [answer["refused"] for answer in answers if "refused" in answer]
        names = [answer["target"] for answer in answers if "target" in answer]
        if refused or len(names) != len(self.urls):
            raise NotifySetupError(refused[0] if refused else f"NOTIFY_URLS: {problem}")
        return names

    def run(self, messages: list[tuple[str, str]], retry_delays: tuple[float, ...]
            ) -> tuple[list[dict[str, Any]], str]:
        """The sender's answers, and what went wrong when it did not answer everything."""
        batch = json.dumps({"urls": self.urls, "messages": messages,
                            "retry_delays": list(retry_delays)})
        timeout = SEND_TIMEOUT * (1 + len(messages) * len(self.urls))
        with self._lock:
            if self._killed:
                return [], "the daemon is stopping"
            process = self._process = subprocess.Popen(
                SENDER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
        try:
            out, err = process.communicate(batch, timeout=timeout)
            problem = (err.strip().splitlines() or [f"the sender exited with status "
                                                    f"{process.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
            problem = f"no answer within {timeout:g} s"
        finally:
            with self._lock:
                self._process = None
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")], problem

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            if self._process is not None:
                self._process.kill()


class Deliverer:
    """Sends notices to every target, one message per kind per ``interval`` (the rest grouped,
    :class:`Throttle`), from its own thread. ``put`` never blocks: a full queue drops the
    notice, and the next message says how many were dropped."""

    def __init__(self, sender: Sender, targets: list[str], interval: float, project: str,
                 health: Health) -> None:
        self._sender = sender
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
        retries after this, and a sender still busy then is killed."""
        self._closing.set()
        deadline = time.monotonic() + grace
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=grace)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._sender.kill()
        self._thread.join(grace)

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
            if messages:
                try:
                    self._deliver(messages)
                except Exception as error:  # the thread must outlive any one batch
                    self._health.failed("notifications", f"{type(error).__name__}: {error}")
            if item is None:
                return

    def _deliver(self, notices: list[Notice]) -> None:
        batch = [(f"starforge {self._project}: {notice.title}", notice.body)
                 for notice in notices]
        dropped = self.dropped - self._told_dropped
        if dropped:
            self._told_dropped += dropped
            title, body = batch[0]
            batch[0] = (title, body + f"\n({dropped} notices were dropped: too many at once)")
        retries = () if self._closing.is_set() else RETRY_DELAYS
        answers, problem = self._sender.run(batch, retries)
        told = {(answer["message"], answer["target"]): answer["error"] for answer in answers
                if "message" in answer}
        for number in range(len(batch)):
            for target in self.targets:
                error = told.get((number, target), problem)
                if error is None:
                    self._health.worked(target)
                else:
                    self._health.failed(target, error)
