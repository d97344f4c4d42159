"""``starforge schedules [--json]``: the recurring triggers and when they fire next."""

from __future__ import annotations

import json
import time

import click

from starforge_daemon.cli.project import require_project
from starforge_daemon.client.schedules import ScheduleListing, ScheduleRow, list_schedules
from starforge_daemon.client.table import text_table
from starforge_daemon.core.durations import duration_text
from starforge_daemon.core.models import iso_utc
from starforge_daemon.core.schedules import ScheduleError


def _when(row: ScheduleRow, now: float) -> str:
    if row.next_due > now:
        return f"{iso_utc(row.next_due)} (in {duration_text(row.next_due - now)})"
    waits = "; waits for its last trigger to end" if row.waiting_for else ""
    return f"{iso_utc(row.next_due)} (due{waits})"


def _table(listing: ScheduleListing, now: float) -> str:
    if not listing.rows:
        return "(no schedules: see .claude/schedules.toml and docs/schedules.md)"
    rows = [[row.name, row.kind, f"{row.expression} ({row.timezone})" if row.timezone
             else row.expression, row.agent,
             f"{iso_utc(row.last_fired)} ({duration_text(now - row.last_fired)} ago)"
             if row.last_fired is not None else "never", _when(row, now)]
            for row in listing.rows]
    return text_table(["SCHEDULE", "KIND", "EXPRESSION", "AGENT", "LAST FIRED", "NEXT DUE"], rows)


@click.command(short_help="List the recurring triggers and when each fires next.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """List the schedules of .claude/schedules.toml: kind (every or cron), expression, agent,
    when each last fired and when it is next due (a schedule the daemon has not read yet: as
    if it read it now). Times are shown in UTC; a cron expression runs in UTC unless its
    schedule names a timezone. Exits 1 when the file, or a schedule in it, is invalid."""
    paths = require_project(ctx)
    now = time.time()
    try:
        listing = list_schedules(paths, now)
    except ScheduleError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(listing.to_json(), indent=2) if as_json else _table(listing, now))
    for name, problem in listing.invalid.items():
        click.echo(f"invalid schedule [{name}]: {problem}", err=True)
    if listing.invalid:
        ctx.exit(1)
