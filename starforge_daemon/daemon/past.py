"""What a starting daemon takes from the runs before it, out of the run history: the day's
cost so far (``DAILY_COST_LIMIT_USD``) and each ticket's last session (``RESUME_SESSIONS``)."""

from __future__ import annotations

from starforge_daemon.core.events import Problem, Publisher
from starforge_daemon.core.holds import Holds, utc_day_start
from starforge_daemon.core.models import parse_iso_utc
from starforge_daemon.core.sessions import TicketSessions
from starforge_daemon.store.history import History


def read_past(history: History, holds: Holds, sessions: TicketSessions | None, now: float,
              events: Publisher, budgeted: bool) -> None:
    if not budgeted and sessions is None:
        return
    today = utc_day_start(now)
    try:
        records = history.records()
    except OSError as error:
        events.publish(Problem(msg="cannot read the run history", error=str(error)))
        return
    for record in records:
        try:
            ended = parse_iso_utc(record.ended_at)
        except ValueError:  # a damaged line
            continue
        if ended is not None and ended >= today:
            holds.spent(record.cost_usd, ended)
        if sessions is not None:
            sessions.ended(record.ticket, record.session_id)
