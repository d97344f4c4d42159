"""``starforge queue list`` and ``starforge trigger``: look at the queue, add to it."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import click

from starforge_daemon.cli.completion import complete_agents
from starforge_daemon.cli.control import cancel, pause, resume
from starforge_daemon.cli.project import pass_project
from starforge_daemon.core.durations import duration_text
from starforge_daemon.store.paths import ProjectPaths

if TYPE_CHECKING:
    from starforge_daemon.client.listing import QueueListing


def _listing_text(listing: QueueListing) -> str:
    from starforge_daemon.client.table import text_table

    lines = []
    if listing.pending:
        rows = [[item.position, item.name, item.agent, item.ticket or "-", item.action or "-",
                 duration_text(item.age_s), item.state, item.note] for item in listing.pending]
        lines.append(text_table(["#", "TRIGGER", "AGENT", "TICKET", "ACTION", "AGE", "STATE",
                                 "NOTE"], rows))
    else:
        lines.append("(no pending triggers)")
    if listing.not_queued:
        lines += ["", "not queued (the daemon moves invalid files to processed/invalid/):"]
        lines += [f"  {item.name}: {item.kind}: {item.reason}" for item in listing.not_queued]
    starting = sum(1 for item in listing.pending if item.state == "next")
    running = ", ".join(listing.running) or "none"
    limits = f"{listing.mode} mode, limit {listing.limit}, running: {running}"
    lines.append("")
    if listing.daemon_pid is not None:
        lines.append(f"daemon: running, pid {listing.daemon_pid}; {limits}; "
                     f"{starting} start next")
    else:
        lines.append(f"daemon: not running; a start would run {starting} first ({limits})")
    return "\n".join(lines)


@click.group()
def queue() -> None:
    """Look at and steer the pending triggers."""


@queue.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@pass_project
def list_pending(paths: ProjectPaths, as_json: bool) -> None:
    """Pending triggers in the order they will run; works with or without a running daemon.

    STATE is "next" (starts at the next dispatch; without a daemon: at the next start),
    "queued" (its agent is free but the run limit is reached) or "waiting" (its agent is busy,
    or an older trigger for the same agent goes first). Nothing is moved: this is a dry run.
    The triggers whose run is over: `starforge runs`.
    """
    import time

    from starforge_daemon.client.listing import list_queue
    from starforge_daemon.store.settings import SettingsError, load_settings

    try:
        settings = load_settings(paths)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    listing = list_queue(paths, settings, time.time())
    click.echo(json.dumps(listing.to_json(), indent=2) if as_json else _listing_text(listing))


def _json_object(_ctx: click.Context, _param: click.Parameter,
                 value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        parsed = json.loads(value, parse_constant=no_constants)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter('must be a JSON object, like \'{"ticket": 52}\'')
    return parsed


def _extra_fields(_ctx: click.Context, _param: click.Parameter,
                  items: tuple[str, ...]) -> dict[str, Any]:
    """``--field NAME=VALUE``: VALUE as JSON when it parses as JSON (3, true, [1]), else as text."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    fields: dict[str, Any] = {}
    for item in items:
        name, equals, text = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        try:
            fields[name] = json.loads(text, parse_constant=no_constants)
        except ValueError:
            fields[name] = text
    return fields


@click.command(short_help="Queue a trigger for AGENT; prints its path.")
@click.argument("agent", shell_complete=complete_agents)
@click.option("--action", help="What the agent should do (implement_ticket, review, ...).")
@click.option("--ticket", help="Ticket id, kept as text as given (52 is written as \"52\").")
@click.option("--from", "from_agent", metavar="AGENT", help="Who hands the work over.")
@click.option("--message", help="Free text for the agent.")
@click.option("--context", callback=_json_object, metavar="JSON",
              help="A JSON object handed to the agent as the trigger's context.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--max-retries", type=int, help="Retries after a failure (default MAX_RETRIES).")
@click.option("--id", "trigger_id", metavar="ID",
              help="The trigger's id (default: a new one); the file is named ID.trigger.")
@click.option("--after", multiple=True, metavar="ID",
              help="Run only once the trigger ID has ended. Repeatable.")
@click.option("--on-upstream-failure", type=click.Choice(["fail", "skip", "run"]),
              help="When one of --after did not succeed: fail (default), skip, or run anyway.")
@click.option("--dedupe-key", metavar="KEY",
              help="Archived as a duplicate if a trigger with this key waits or runs.")
@click.option("--field", "extra", multiple=True, callback=_extra_fields, metavar="NAME=VALUE",
              help="Any other field (trace_id, say); VALUE is read as JSON when it is JSON, "
                   "else as text. Repeatable.")
@click.option("--wait", "wait_end", is_flag=True,
              help="Then wait for it to end, as `starforge wait` does (exit 0, 1 or 124).")
@click.option("--follow", is_flag=True, help="With --wait: print its run's log meanwhile.")
@click.option("--wait-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="With --wait: give up after this long (exit 124).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"id": ID, "path": PATH} instead of the path.')
@pass_project
def trigger(paths: ProjectPaths, agent: str, action: str | None, ticket: str | None,
            from_agent: str | None, message: str | None, context: dict[str, Any] | None,
            priority: int | None, max_retries: int | None, trigger_id: str | None,
            after: tuple[str, ...], on_upstream_failure: str | None, dedupe_key: str | None,
            extra: dict[str, Any], wait_end: bool, follow: bool,
            wait_timeout: float | None, as_json: bool) -> None:
    """Queue a trigger for AGENT; prints the path of the file written (ID.trigger: its id).

    The trigger is checked with the daemon's own rules (the project's MAX_TRIGGER_BYTES too)
    and written under a hidden name, then renamed into place. An unknown field that looks
    misspelt is written, with a warning. From Python: starforge_daemon.submit_trigger(...).
    """
    from starforge_daemon.client.submit import TriggerWarning, submit_trigger
    from starforge_daemon.intake.validate import InvalidTrigger
    from starforge_daemon.store.settings import (
        SettingsError,  # here, not above: `starforge --help` need not load them
    )

    if not paths.root.is_dir():
        raise click.ClickException(f"no project directory {paths.root}")
    if (follow or wait_timeout is not None) and not wait_end:
        raise click.UsageError("--follow and --wait-timeout go with --wait")
    if as_json and wait_end:
        raise click.UsageError("--json goes without --wait (starforge wait --json)")
    fields = {"action": action, "ticket": ticket, "from_agent": from_agent, "message": message,
              "context": context, "priority": priority, "max_retries": max_retries,
              "id": trigger_id, "after": list(after) or None,
              "on_upstream_failure": on_upstream_failure, "dedupe_key": dedupe_key}
    twice = [name for name in extra if name == "to_agent" or fields.get(name) is not None]
    if twice:
        raise click.UsageError(f"--field {twice[0]}: {twice[0]} is already given")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TriggerWarning)
            path = submit_trigger(agent, project_dir=paths.root, **{**fields, **extra})
    except InvalidTrigger as error:
        raise click.UsageError(f"invalid trigger: {error}") from None
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write the trigger in {error.filename or paths.triggers}: "
                                   f"{error.strerror or error}") from None
    for warning in caught:
        if issubclass(warning.category, TriggerWarning):
            click.echo(f"warning: {warning.message}", err=True)
    from starforge_daemon.cli.waiting import trigger_id_of

    if as_json:
        click.echo(json.dumps({"id": trigger_id_of(str(path)), "path": str(path)}))
        return
    click.echo(str(path))
    if wait_end:
        from starforge_daemon.cli.waiting import wait_and_report

        wait_and_report(paths, [trigger_id_of(str(path))], wait_timeout, False, follow)


for operator_command in (pause, resume, cancel):
    queue.add_command(operator_command)
