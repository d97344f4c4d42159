"""``RESUME_SESSIONS=per-ticket``: the agent session each ticket's last run ended in, so the
ticket's next run continues it (Claude Code's ``--resume``) instead of starting cold."""

from __future__ import annotations

import re

SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # never an option, never a path


class TicketSessions:
    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def ended(self, ticket: str | None, session_id: str | None) -> None:
        """A run of ``ticket`` ended in ``session_id`` (ignored unless it looks like one)."""
        if ticket is not None and session_id is not None and SESSION_ID.fullmatch(session_id):
            self._last[ticket] = session_id

    def resuming(self, argv: list[str], ticket: str | None) -> list[str]:
        """``argv`` with ``--resume <session>`` after its program when the ticket has one."""
        session = self._last.get(ticket) if ticket is not None else None
        return argv if session is None else [argv[0], "--resume", session, *argv[1:]]
