"""``starforge``: argument parsing and printing only; the work happens in the modules it calls."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from tabulate import tabulate

from . import control
from .cli_systemd import systemd
from .config import ProjectPaths, Settings, SettingsError, load_settings
from .instance import running_pid

NOT_RUNNING_EXIT = 3
STOP_MARGIN = 30.0


def _settings(paths: ProjectPaths) -> Settings:
    try:
        return load_settings(paths)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _stop_timeout(paths: ProjectPaths) -> float:
    try:
        grace = load_settings(paths).AGENT_KILL_GRACE
    except SettingsError:
        grace = Settings.model_fields["AGENT_KILL_GRACE"].default
    return grace + STOP_MARGIN


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project-dir", type=click.Path(file_okay=False), envvar="STARFORGE_PROJECT_DIR",
              help="Project root (default: the current directory).")
@click.pass_context
def main(ctx: click.Context, project_dir: str | None) -> None:
    """Run AI coding agents on one repository, handing work between them through triggers."""
    ctx.obj = ProjectPaths.resolve(project_dir)


@main.group()
def daemon() -> None:
    """Start, stop and inspect the daemon of this project."""


@daemon.command()
@click.option("--foreground", is_flag=True, help="Stay attached (for systemd); log to stderr too.")
@click.pass_obj
def start(paths: ProjectPaths, foreground: bool) -> None:
    """Start the daemon; returns once it is ready."""
    from . import service  # the engine is loaded only by the command that runs it

    settings = _settings(paths)
    pid = running_pid(paths)
    if pid is not None:
        raise click.ClickException(f"already running (pid {pid}); nothing started")
    try:
        if foreground:
            service.serve(paths, settings, on_ready=lambda _pid: None, echo=True)
            return
        pid = service.start_in_background(paths, settings)
    except service.StartError as error:
        raise click.ClickException(f"cannot start: {error}") from None
    click.echo(f"starforge daemon started (pid {pid}) in {paths.root}")
    click.echo(settings.mode_text)


@daemon.command()
@click.pass_obj
def stop(paths: ProjectPaths) -> None:
    """Stop the daemon and its running agents; waits until they are gone."""
    try:
        pid = control.stop(paths, _stop_timeout(paths))
    except TimeoutError as error:
        raise click.ClickException(str(error)) from None
    click.echo("starforge daemon is not running" if pid is None
               else f"starforge daemon stopped (pid {pid})")


@daemon.command()
@click.pass_context
def restart(ctx: click.Context) -> None:
    """Replace the daemon; running agents keep going and the new daemon adopts them."""
    paths: ProjectPaths = ctx.obj
    _settings(paths)
    try:
        pid = control.stop(paths, _stop_timeout(paths), leave_agents=True)
    except TimeoutError as error:
        raise click.ClickException(str(error)) from None
    if pid is not None:
        click.echo(f"starforge daemon (pid {pid}) handed its running agents over")
    ctx.invoke(start)


def _status_text(doc: dict[str, Any]) -> str:
    rows = [[slot["agent"], slot["status"], slot["pid"] or "-", slot["ticket"] or "-",
             _duration(slot["elapsed_s"]), (slot["last_log_line"] or "")[:60]]
            for slot in doc["slots"]]
    lines = [tabulate(rows, headers=["AGENT", "STATUS", "PID", "TICKET", "ELAPSED",
                                     "LAST LOG LINE"]) if rows else "(no agent has run yet)"]
    queue = doc["queue"]
    lines.append("")
    lines.append("queue: " + ", ".join(f"{count} {name}" for name, count in queue.items()))
    if doc["running"]:
        lines.append(f"daemon: running, pid {doc['pid']}, up {_duration(doc['uptime_s'])}, "
                     f"{doc['mode']} mode, limit {doc['max_concurrent']}")
    else:
        lines.append("daemon: not running (showing the files' view)")
    return "\n".join(lines)


@daemon.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_obj
def status(paths: ProjectPaths, as_json: bool) -> None:
    """Show slots, queue and daemon; exit 0 when running, 3 when not."""
    doc = control.status(paths)
    click.echo(json.dumps(doc, indent=2) if as_json else _status_text(doc))
    sys.exit(0 if doc["running"] else NOT_RUNNING_EXIT)


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Where to create the demo project (default: a new temporary folder).")
def demo(directory: str | None) -> None:
    """Create a demo project, let the daemon drain its triggers with an example agent, stop."""
    from .demo import run_demo

    sys.exit(run_demo(directory, click.echo))


main.add_command(systemd)


if __name__ == "__main__":
    main()
