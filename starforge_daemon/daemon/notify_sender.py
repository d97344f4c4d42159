"""Sending messages with Apprise, in a process of its own.

Apprise loads every one of its plugins when imported, about 27 MB of memory, so the daemon never
imports it: its delivery thread (:mod:`starforge_daemon.daemon.observers.delivery`) runs
``python3 -m starforge_daemon.daemon.notify_sender`` for each batch of messages and reads the
answers. ``starforge notify test`` uses :class:`AppriseTarget` in its own short-lived process.

    stdin   {"urls": [URL, ...], "messages": [[TITLE, BODY], ...], "retry_delays": [SECONDS, ...]}
    stdout  {"url": I, "target": NAME} or {"url": I, "refused": WHY}: one line per URL, first;
            then {"message": M, "target": NAME, "error": null or WHY} per message and target.

Each message goes to each target, tried again after each of ``retry_delays`` while it fails.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class NotifySetupError(ValueError):
    """A ``NOTIFY_URLS`` URL that Apprise cannot send to; the message names it."""


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
        import logging

        import apprise

        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:
            try:
                if self._plugin.notify(body=body, title=title):
                    return None
            except Exception as error:  # a plugin's bug must not end the batch
                return f"{type(error).__name__}: {error}"
            lines = said.getvalue().strip().splitlines()
        return lines[-1] if lines else "not delivered"


def send_with_retries(target: AppriseTarget, title: str, body: str,
                      retry_delays: list[float]) -> str | None:
    error = target.send(title, body)
    for delay in retry_delays:
        if error is None:
            break
        time.sleep(delay)
        error = target.send(title, body)
    return error


def _say(answer: dict[str, Any]) -> None:
    print(json.dumps(answer), flush=True)


def main() -> None:
    batch = json.load(sys.stdin)
    targets = []
    for index, url in enumerate(batch["urls"]):
        try:
            targets.append(AppriseTarget(url))
        except NotifySetupError as error:
            _say({"url": index, "refused": str(error)})
            continue
        _say({"url": index, "target": targets[-1].name})
    for number, (title, body) in enumerate(batch["messages"]):
        for target in targets:
            _say({"message": number, "target": target.name,
                  "error": send_with_retries(target, title, body, batch["retry_delays"])})


if __name__ == "__main__":
    main()
