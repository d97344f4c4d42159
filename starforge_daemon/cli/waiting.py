"""``starforge wait``, and the waiting of ``starforge trigger --wait``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths

if TYPE_CHECKING:
    from starforge_daemon.client.waiting import Ending

TIMED_OUT_EXIT = 124  # like timeout(1)
JSON_KEYS = ("id", "outcome", "reason", "trigger")


def trigger_id_of(text: str) -> str:
    """An id as given, or the id of a trigger file named by its path."""
    from starforge_daemon.core.models import assigned_id, is_agent_name

    if is_agent_name(text) and not text.endswith(".trigger"):
        return text
    path = Path(text)
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        document = None
    own = document.get("id") if isinstance(document, dict) else None
    return own if is_agent_name(own) else assigned_id(path.name)


def wait_and_report(paths: ProjectPaths, ids: list[str], timeout: float | None, as_json: bool,
                    follow: bool = False) -> None:
    """Wait for ``ids`` to end, printing each outcome as it comes; exit 0 when all succeeded,
    1 when one did not, 124 when ``timeout`` passed first. ``follow``: print each run's log
    while it runs (one trigger)."""
    from starforge_daemon.client.waiting import Ending, Waiter, live_triggers, wait_for
    from starforge_daemon.store.settings import load_settings

    live = {trigger_id for trigger_id, _ in live_triggers(paths, load_settings(paths))}
    waiter = Waiter(paths, ids, live)
    endings: list[Ending] = []

    follower = LogFollower(paths, ids[0]) if follow else None

    def ended(ending: Ending) -> None:
        endings.append(ending)
        if follower is not None:
            follower.ended(ending)
        if not as_json:
            click.echo(f"{ending.id}: {ending.outcome}"
                       + (f" ({ending.reason})" if ending.reason else ""))

    left = wait_for(paths, waiter, timeout, ended, follower.wake if follower else lambda: None)
    endings += [Ending(trigger_id, None) for trigger_id in left]
    if as_json:
        click.echo(json.dumps([{key: getattr(ending, key) for key in JSON_KEYS}
                               for ending in endings], indent=2))
    elif left:
        click.echo(f"still waiting after {timeout:g}s: {', '.join(left)}", err=True)
    sys.exit(TIMED_OUT_EXIT if left else 0 if all(e.succeeded for e in endings) else 1)


class LogFollower:
    """Prints the log of each run of one trigger while it runs, and, when the trigger ends,
    the log of a last run too short to have been seen running."""

    def __init__(self, paths: ProjectPaths, trigger_id: str) -> None:
        self.paths = paths
        self.trigger_id = trigger_id
        self.followed: set[str] = set()

    def wake(self) -> None:
        from starforge_daemon.store.journal import open_runs

        for run in open_runs(self.paths):
            if run.trigger_ident == self.trigger_id and run.run_id not in self.followed \
                    and Path(run.log_path).exists():
                self._show(run.run_id, Path(run.log_path))

    def ended(self, ending: Ending) -> None:
        if ending.run_id and ending.log and ending.run_id not in self.followed \
                and Path(ending.log).exists():
            self._show(ending.run_id, Path(ending.log))

    def _show(self, run_id: str, log: Path) -> None:
        from starforge_daemon.cli.runs import follow_run_log

        self.followed.add(run_id)
        click.echo(f"==> {log} <==", err=True)
        follow_run_log(self.paths, log)


@click.command(short_help="Wait for triggers to end; exit 0 if all succeeded.")
@click.argument("ids", nargs=-1)
@click.option("--ticket", help="Every trigger of this ticket queued or running now.")
@click.option("--all", "every", is_flag=True, help="Every trigger queued or running now.")
@click.option("--timeout", type=click.FloatRange(min=0),
              help="Give up after this many seconds (exit 124).")
@click.option("--json", "as_json", is_flag=True,
              help='Print [{"id", "outcome", "reason", "trigger"}] at the end (outcome null: '
                   "still pending at the timeout).")
@pass_project
def wait(paths: ProjectPaths, ids: tuple[str, ...], ticket: str | None, every: bool,
         timeout: float | None, as_json: bool) -> None:
    """Block until the triggers IDS (ids, or trigger files) have ended, printing each
    outcome as it comes (ID: OUTCOME (REASON)). A trigger that is retried has not ended yet;
    an id no trigger has had yet is awaited until one comes and ends. Exits 0 when every one
    succeeded, 1 when one did not, 124 after --timeout. Woken by the daemon's files changing
    (inotify), not by polling."""
    from starforge_daemon.client.waiting import live_triggers
    from starforge_daemon.store.settings import load_settings

    if sum((bool(ids), ticket is not None, every)) != 1:
        raise click.UsageError("name trigger IDS, or --ticket T, or --all")
    targets = [trigger_id_of(text) for text in ids]
    if not targets:
        targets = [trigger_id for trigger_id, its_ticket in
                   live_triggers(paths, load_settings(paths))
                   if every or its_ticket == ticket]
        if not targets:
            click.echo("nothing queued or running to wait for", err=True)
            return
    wait_and_report(paths, targets, timeout, as_json)
