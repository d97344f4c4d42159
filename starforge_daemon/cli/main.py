"""``starforge``: argument parsing and printing only; the work happens in the modules it calls.

Agents run ``starforge trigger`` on every handoff, so start-up time counts: this module and the
other cli modules import only click and light modules at the top, and each command imports
what it needs when it runs.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from starforge_daemon import __version__
from starforge_daemon.cli.project import (
    LOCATION,
    STATUS_UNKNOWN_EXIT,
    location,
    pass_project,
    require_project,
)
from starforge_daemon.core.durations import duration_text
from starforge_daemon.store.instance import HANDOFF_EXIT_STATUS, running_pid
from starforge_daemon.store.paths import ProjectPaths, locate

CLEAR_SCREEN, HOME, CLEAR_LINE_END, CLEAR_BELOW = "\x1b[2J", "\x1b[H", "\x1b[K", "\x1b[J"

NOT_RUNNING_EXIT = 3
STOP_MARGIN = 30.0
DAEMON_ALIASES = ("status", "start", "stop", "restart")

if TYPE_CHECKING:
    from starforge_daemon.store.settings import Settings


def _settings(paths: ProjectPaths) -> Settings:
    from starforge_daemon.store.settings import SettingsError, load_settings

    try:
        return load_settings(paths)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _stop_timeout(paths: ProjectPaths) -> float:
    from starforge_daemon.store.settings import Settings, SettingsError, load_settings

    try:
        grace = load_settings(paths).AGENT_KILL_GRACE
    except SettingsError:
        grace = Settings.AGENT_KILL_GRACE  # the class holds the defaults
    return grace + STOP_MARGIN


# Commands kept in other modules, each loaded only when it runs: `starforge --help` lists them
# from here. name -> (module in starforge_daemon.cli, attribute, the line --help shows).
LAZY_COMMANDS = {
    "agent": ("control", "agent", "Act on one agent's run."),
    "completion": ("completion", "completion", "Print the shell completion script (bash, zsh or fish)."),
    "dashboard": ("dashboard", "top", "The live dashboard (same as top)."),
    "doctor": ("doctor", "doctor", "Check the project, its settings, agent program and daemon."),
    "notify": ("notify", "notify", "Notifications: send a test message (notify test)."),
    "logs": ("runs", "logs", "Show or follow a run's log, or the daemon's."),
    "queue": ("queue", "queue", "Look at and steer the pending triggers."),
    "report": ("runs", "report", "Runs per agent: outcomes, durations, throughput, cost."),
    "retry": ("control", "retry", "Put failed triggers back in the queue."),
    "runs": ("runs", "runs", "List the finished runs (--failed: the failed ones)."),
    "schedules": ("schedules", "schedules", "List the recurring triggers and when each fires next."),
    "systemd": ("systemd", "systemd", "Run this project's daemon under systemd."),
    "top": ("dashboard", "top", "A live, full-screen view of slots, queue, runs and events."),
    "trigger": ("queue", "trigger", "Queue a trigger for AGENT; prints its path."),
    "wait": ("waiting", "wait", "Wait for triggers to end; exit 0 if all succeeded."),
    "worktrees": ("worktrees", "worktrees", "List (or clean) the runs' git worktrees."),
}


class Starforge(click.Group):
    """The top-level group. Commands in LAZY_COMMANDS are imported when they run, so an agent's
    `starforge trigger` loads only its own module. ``status``, ``start``, ``stop`` and
    ``restart`` also answer on their own, short for ``daemon status`` and so on."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in DAEMON_ALIASES:
            return daemon.commands[cmd_name]
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute, line = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"starforge_daemon.cli.{module}"), attribute)
            command.short_help = line
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, without importing the lazy commands' modules."""
        rows = [(name, LAZY_COMMANDS[name][2]) if name not in self.commands
                else (name, self.commands[name].get_short_help_str(formatter.width))
                for name in self.list_commands(ctx)
                if name not in self.commands or not self.commands[name].hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=Starforge, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="status, start, stop and restart are short for `starforge daemon status` "
                    "and so on.")
@click.option("--project-dir", type=click.Path(file_okay=False), envvar="STARFORGE_PROJECT_DIR",
              show_envvar=True,
              help="The project's folder (default: the nearest folder from here upwards that "
                   "holds .claude/, as git finds a repository).")
@click.version_option(__version__, "-V", "--version", prog_name="starforge",
                      message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, project_dir: str | None) -> None:
    """Run AI coding agents on one repository, handing work between them through triggers."""
    place = locate(project_dir or None)
    ctx.meta[LOCATION] = place
    ctx.obj = place.paths


@main.group()
def daemon() -> None:
    """Start, stop and inspect the daemon of this project."""


@daemon.command()
@click.option("--foreground", is_flag=True, help="Stay attached (for systemd); log to stderr too.")
@pass_project
def start(paths: ProjectPaths, foreground: bool) -> None:
    """Start the daemon; returns once it is ready."""
    from starforge_daemon.daemon import service  # the engine is loaded only by the command that runs it
    from starforge_daemon.daemon.engine import StopMode

    settings = _settings(paths)
    pid = running_pid(paths)
    if pid is not None:
        raise click.ClickException(f"already running (pid {pid}); nothing started")
    try:
        if foreground:
            stopped = service.serve(paths, settings, on_ready=lambda _pid, _notes: None,
                                    echo=True)
            if stopped is StopMode.HANDOFF:
                sys.exit(HANDOFF_EXIT_STATUS)
            return
        launched = service.start_in_background(paths, settings)
    except service.StartError as error:
        raise click.ClickException(f"cannot start: {error}") from None
    click.echo(f"starforge daemon started (pid {launched.pid}) in {paths.root}")
    click.echo(settings.mode_text)
    for note in launched.notes:
        click.echo(f"warning: {note}", err=True)


@daemon.command()
@pass_project
def stop(paths: ProjectPaths) -> None:
    """Stop the daemon and its running agents; waits until they are gone."""
    from starforge_daemon.client import control

    try:
        pid = control.stop(paths, _stop_timeout(paths))
    except (TimeoutError, PermissionError) as error:
        raise click.ClickException(str(error)) from None
    click.echo("starforge daemon is not running" if pid is None
               else f"starforge daemon stopped (pid {pid})")


@daemon.command()
@click.pass_context
def restart(ctx: click.Context) -> None:
    """Replace the daemon; running agents keep going and the new daemon adopts them."""
    from starforge_daemon.client import control

    paths = require_project(ctx)
    _settings(paths)
    try:
        pid = control.stop(paths, _stop_timeout(paths), leave_agents=True)
    except (TimeoutError, PermissionError) as error:
        raise click.ClickException(str(error)) from None
    if pid is not None:
        click.echo(f"starforge daemon (pid {pid}) handed its running agents over")
    ctx.invoke(start)


def _status_text(doc: dict[str, Any]) -> str:
    from starforge_daemon.client.progress import activity_text
    from starforge_daemon.client.table import text_table

    rows = [[slot["agent"], slot["status"], slot["pid"] or "-", slot["ticket"] or "-",
             duration_text(slot["elapsed_s"]),
             activity_text(slot["progress"]) if slot["progress"] else
             (slot["last_log_line"] or "")[:60]]
            for slot in doc["slots"]]
    lines = [text_table(["AGENT", "STATUS", "PID", "TICKET", "ELAPSED", "DOING / LAST LOG LINE"],
                        rows)
             if rows else "(no agent has run yet)"]
    queue = doc["queue"]
    lines.append("")
    lines.append("queue: " + ", ".join(f"{count} {name}" for name, count in queue.items()))
    for waiting in doc["waiting"][:5]:
        lines.append(f"waiting: {waiting['trigger']} for {', '.join(waiting['waiting_for'])}")
    if len(doc["waiting"]) > 5:
        lines.append(f"waiting: {len(doc['waiting']) - 5} more (starforge queue list)")
    paused = doc["paused"]
    if paused["all"] or paused["agents"]:
        held = "everyone" if paused["all"] else ", ".join(paused["agents"])
        lines.append(f"paused: {held} (starforge queue resume [AGENT])")
    if doc["held_back"]:
        lines.append(f"holding back: {doc['held_back']}")
    if doc["running"]:
        lines.append(f"daemon: running, pid {doc['pid']}, up {duration_text(doc['uptime_s'])}, "
                     f"{doc['mode']} mode, limit {doc['max_concurrent']}")
    else:
        lines.append("daemon: not running (showing the files' view)")
    if doc["running"] and doc["agent_program"]:
        lines.append(f"agent program: {doc['agent_program']}")
    if doc["running"] and doc["containment"]:
        # the daemon's text may name itself already (it is also its MODE line)
        lines.append(f"containment: {doc['containment'].removeprefix('containment: ')}")
    if doc["notify_error"]:
        lines.append(f"notifications failing: {doc['notify_error']}")
    return "\n".join(lines)


def _watch(render: Callable[[], str], interval: float, title: str | None) -> None:
    """Print ``render()`` every ``interval`` seconds until Ctrl-C: redrawn in place on a
    terminal, one block after another otherwise (``title`` heads each block when given)."""
    tty = sys.stdout.isatty()
    if tty:
        click.echo(CLEAR_SCREEN, nl=False)
    try:
        while True:
            text = render()
            if title:
                text = f"{title}  {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n{text}"
            if tty:
                lines = (line + CLEAR_LINE_END for line in text.splitlines())
                click.echo(HOME + "\n".join(lines) + "\n" + CLEAR_BELOW, nl=False)
            else:
                click.echo(text + ("\n" if title else ""))
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@daemon.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.option("--watch", is_flag=True,
              help="Refresh until Ctrl-C: in place on a terminal, else one block after another "
                   "(with --json, one document after another). Exits 0.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--check", is_flag=True,
              help="Only say in one line whether the daemon is well (its loop answers within "
                   "5s, its keeper is connected): exit 0 healthy, 1 not.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, watch: bool, interval: float, check: bool) -> None:
    """Show slots, queue and daemon; exit 0 when running, 3 when not, 4 outside a project."""
    from click.core import ParameterSource

    from starforge_daemon.client import control

    paths = require_project(ctx, STATUS_UNKNOWN_EXIT)
    if not watch and ctx.get_parameter_source("interval") is not ParameterSource.DEFAULT:
        raise click.UsageError("--interval only goes with --watch")
    if check:
        from starforge_daemon.client.health import check_health

        if as_json or watch:
            raise click.UsageError("--check goes without --json and --watch")
        health = check_health(paths)
        click.echo(health.line)
        sys.exit(0 if health.healthy else 1)

    def render(doc: dict[str, Any]) -> str:
        import json

        return json.dumps(doc, indent=2) if as_json else _status_text(doc)

    if watch:
        title = None if as_json else f"Every {interval:g}s: starforge daemon status (Ctrl-C stops)"
        _watch(lambda: render(control.status(paths)), interval, title)
        return
    doc = control.status(paths)
    click.echo(render(doc))
    sys.exit(0 if doc["running"] else NOT_RUNNING_EXIT)


@main.command(short_help="Try it: a demo project drained by an example agent.")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Where to create the demo project (default: a new temporary folder).")
def demo(directory: str | None) -> None:
    """Create a demo project, let the daemon drain its triggers with an example agent, stop."""
    from starforge_daemon.cli.demo import run_demo

    sys.exit(run_demo(directory, click.echo))


@main.command(short_help="Make this folder (or --project-dir) a project.")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Make the current folder (or --project-dir) a project: the .claude/ folders, a
    commented .env, an example trigger and an example schedules file
    (.claude/schedules.toml.example); in a git repository, .env and .claude/ are also
    listed in .git/info/exclude.

    Never overwrites a file that exists; says "kept" for each one it left alone.
    """
    from starforge_daemon.client.scaffold import EXAMPLE_NAME, exclude_from_git, init_project

    place = location(ctx)
    paths = place.paths if place.named else ProjectPaths(place.start)
    if not paths.root.is_dir():
        raise click.ClickException(f"no such folder {paths.root}")
    try:
        steps = init_project(paths)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        raise click.ClickException(f"cannot set up {paths.root}:{where} "
                                   f"{error.strerror or error}") from None
    if not place.named and not place.problem and place.paths != paths:
        click.echo(f"note: inside the project {place.paths.root}; commands run in here now "
                   f"use this one")
    for step in steps:
        shown = str(step.path.relative_to(paths.root)) + ("/" if step.path.is_dir() else "")
        click.echo(f"{'created' if step.created else 'kept   '} {shown}")
    click.echo(exclude_from_git(paths.root))
    example = paths.triggers.relative_to(paths.root) / EXAMPLE_NAME
    click.echo("\nnext: edit .env (AGENT_COMMAND at least), then `starforge daemon start`.")
    click.echo(f"{example} is not queued (the daemon reads only *.trigger); queue it with\n"
               f"  starforge trigger junior-dev-a --from orchestrator --action implement_ticket "
               f"--context '{{\"ticket\": 52}}'\n"
               f"or copy it into the queue under a hidden name, then rename it:\n"
               f"  cp {example} .claude/triggers/.52.tmp && "
               f"mv .claude/triggers/.52.tmp .claude/triggers/52.trigger")


if __name__ == "__main__":
    main()
