"""Operator commands: hold, resume, stop and cancel work in a running daemon; retry failures.

pause, resume, agent stop and queue cancel go to the running daemon over its control socket
(``.claude/daemon/control.sock``) and fail with exit 1 when no daemon runs; retry only moves
files, so it works either way.
"""

from __future__ import annotations

import json
from typing import Any

import click

from . import control
from .controlsocket import ControlError, request
from .paths import ProjectPaths


def _ask(paths: ProjectPaths, message: dict[str, Any], as_json: bool) -> dict[str, Any]:
    try:
        answer = request(paths.control_socket, message)
    except ControlError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    if not answer.get("ok"):
        raise click.ClickException(answer.get("error", "the daemon refused"))
    return answer


def _paused_text(paused: dict[str, Any]) -> str:
    if paused["all"]:
        return "all agents paused"
    return f"paused: {', '.join(paused['agents'])}" if paused["agents"] else "nothing paused"


json_option = click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")


@click.command()
@click.argument("agent", required=False)
@json_option
@click.pass_obj
def pause(paths: ProjectPaths, agent: str | None, as_json: bool) -> None:
    """Start no new runs (of AGENT, or of anyone); running ones carry on, triggers keep
    queueing, and the pause outlives a daemon restart."""
    answer = _ask(paths, {"op": "pause", "agent": agent}, as_json)
    if not as_json:
        click.echo(_paused_text(answer["paused"]))


@click.command()
@click.argument("agent", required=False)
@json_option
@click.pass_obj
def resume(paths: ProjectPaths, agent: str | None, as_json: bool) -> None:
    """Lift a pause (of AGENT, or the global one)."""
    answer = _ask(paths, {"op": "resume", "agent": agent}, as_json)
    if not as_json:
        click.echo(_paused_text(answer["paused"]))


@click.command()
@click.argument("trigger")
@json_option
@click.pass_obj
def cancel(paths: ProjectPaths, trigger: str, as_json: bool) -> None:
    """Take a waiting TRIGGER out of the queue, to processed/failed/ as cancelled."""
    answer = _ask(paths, {"op": "cancel", "trigger": trigger}, as_json)
    if not as_json:
        click.echo(f"cancelled: {answer['archived']}")


@click.group()
def agent() -> None:
    """Act on one agent's run."""


@agent.command("stop")
@click.argument("name")
@json_option
@click.pass_obj
def stop_agent(paths: ProjectPaths, name: str, as_json: bool) -> None:
    """Stop NAME's current run (SIGTERM, SIGKILL after the grace); its trigger goes to
    processed/failed/ as stopped by the operator, without a retry."""
    answer = _ask(paths, {"op": "stop-agent", "agent": name}, as_json)
    if not as_json:
        click.echo(f"stopping {name}: run {answer['run_id']} ({answer['trigger']})")


@click.command()
@click.argument("triggers", nargs=-1, required=True)
@json_option
@click.pass_obj
def retry(paths: ProjectPaths, triggers: tuple[str, ...], as_json: bool) -> None:
    """Put archived failed TRIGGERS (names in processed/failed/) back in the queue with a
    fresh attempt count."""
    try:
        moved = control.retry_failed(paths, list(triggers))
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps([{"trigger": name, "queued_as": str(path)}
                               for name, path in zip(triggers, moved, strict=True)], indent=2))
        return
    for name, path in zip(triggers, moved, strict=True):
        click.echo(f"{name} -> {path}")
