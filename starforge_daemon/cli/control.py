"""Operator commands: hold and resume work, stop a run, cancel a trigger, retry failures.

agent stop and queue cancel go to the running daemon over its control socket
(``.claude/daemon/control.sock``) and fail with exit 1 when no daemon runs. pause and resume
go to the daemon when it runs, else change ``.claude/daemon/paused.json`` themselves; retry
only moves files. Those three work either way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from starforge_daemon.cli.completion import complete_agents, complete_failed, complete_queued
from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths

if TYPE_CHECKING:
    from starforge_daemon.store.pauses import Pauses


def _ask(paths: ProjectPaths, message: dict[str, Any], as_json: bool) -> dict[str, Any]:
    from starforge_daemon.client.steer import Refused, ask
    from starforge_daemon.store.control_socket import ControlError

    try:
        answer = ask(paths, message)
    except Refused as refusal:
        if as_json:
            click.echo(json.dumps(refusal.answer, indent=2))
        raise click.ClickException(str(refusal)) from None
    except ControlError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    return answer


def _agent_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from starforge_daemon.core.models import AGENT_NAME_RULE, is_agent_name

    if value is not None and not is_agent_name(value):
        raise click.BadParameter(f"{value!r} is not an agent name: names are {AGENT_NAME_RULE}")
    return value


def pause_change(before: Pauses, after: Pauses, agent: str | None, paused: bool) -> str:
    """What a pause or resume of ``agent`` (all agents when None) changed, and what still
    holds, in one line."""
    who = agent or "all agents"
    if before.holds(agent) != after.holds(agent):
        said = f"{'paused' if paused else 'resumed'} {who}"
    elif paused:
        said = f"{who} {'was' if agent else 'were'} already paused"
    else:
        said = f"{agent} was not paused" if agent else "there was no pause of all agents"
    if paused:
        return said + ": no new runs start; running ones carry on"
    if after.all:
        return said + "; all agents are still paused (starforge queue resume)"
    if agent is None and after.agents:
        return said + f"; still paused: {', '.join(after.agents)} (starforge queue resume AGENT)"
    return said


def _set_pause(paths: ProjectPaths, agent: str | None, paused: bool, as_json: bool) -> None:
    """Through the daemon when it runs; else in paused.json, which it reads when it starts."""
    from starforge_daemon.client.steer import set_pause
    from starforge_daemon.store.control_socket import ControlError

    try:
        change = set_pause(paths, agent, paused)
    except ControlError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(change.answer, indent=2))
        return
    said = pause_change(change.before, change.after, agent, paused)
    if not change.daemon_running:
        said += " (the daemon is not running; it keeps to this when it starts)"
    click.echo(said)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
agent_argument = click.argument("agent", required=False, callback=_agent_name,
                                shell_complete=complete_agents)


def _pause_command(paused: bool, help_text: str) -> click.Command:
    """``pause`` or ``resume``: the same arguments and body, the other way round."""

    @click.command("pause" if paused else "resume", help=help_text)
    @agent_argument
    @json_option
    @pass_project
    def command(paths: ProjectPaths, agent: str | None, as_json: bool) -> None:
        _set_pause(paths, agent, paused, as_json)

    return command


pause = _pause_command(True, """Start no new runs (of AGENT, or of anyone); running ones carry on,
    triggers keep queueing, and the pause outlives a daemon restart. Works without a daemon too.""")
resume = _pause_command(False, """Lift a pause (of AGENT, or the pause of all agents); says what
    still holds. Works without a daemon too.""")


@click.command()
@click.argument("trigger", shell_complete=complete_queued)
@json_option
@pass_project
def cancel(paths: ProjectPaths, trigger: str, as_json: bool) -> None:
    """Take a waiting TRIGGER out of the queue, to processed/failed/ as cancelled (needs
    the running daemon)."""
    answer = _ask(paths, {"op": "cancel", "trigger": trigger}, as_json)
    if not as_json:
        click.echo(f"cancelled: {answer['archived']}")


@click.group()
def agent() -> None:
    """Act on one agent's run."""


@agent.command("stop")
@click.argument("name", shell_complete=complete_agents)
@json_option
@pass_project
def stop_agent(paths: ProjectPaths, name: str, as_json: bool) -> None:
    """Stop NAME's current run (AGENT_STOP_SIGNAL, SIGKILL after the grace); its trigger goes to
    processed/failed/ as stopped by the operator, without a retry (needs the running
    daemon)."""
    answer = _ask(paths, {"op": "stop-agent", "agent": name}, as_json)
    if not as_json:
        click.echo(f"stopping {name}: run {answer['run_id']} ({answer['trigger']})")


@click.command(short_help="Put failed triggers back in the queue.")
@click.argument("triggers", nargs=-1, shell_complete=complete_failed)
@click.option("--all", "every", is_flag=True, help="Every trigger in processed/failed/.")
@click.option("--agent", "agent", metavar="AGENT", shell_complete=complete_agents,
              help="Every failed trigger of AGENT (or of the pool AGENT).")
@click.option("--json", "as_json", is_flag=True,
              help='Print what moved as JSON: [{"trigger": NAME, "queued_as": PATH}].')
@pass_project
def retry(paths: ProjectPaths, triggers: tuple[str, ...], every: bool, agent: str | None,
          as_json: bool) -> None:
    """Put archived failed TRIGGERS (names in processed/failed/, listed by
    `starforge runs --failed`) back in the queue with a fresh attempt count.

    Only files move, so it works with or without a running daemon; a running daemon takes
    them like any new trigger. Prints each name and where it was queued.
    """
    from starforge_daemon.client.control import RetryError, retry_failed
    from starforge_daemon.client.listing import finished_triggers

    if sum((bool(triggers), every, agent is not None)) != 1:
        raise click.UsageError("name the TRIGGERS, or use --all or --agent AGENT (one of them)")
    names = list(triggers) or [item.name for item in finished_triggers(paths, failed_only=True,
                                                                      agent=agent)]
    if not names:
        click.echo("[]" if as_json else "no failed triggers" + (f" of {agent}" if agent else ""))
        return
    try:
        moved = retry_failed(paths, names)
        problem = None
    except RetryError as error:
        moved, problem = error.moved, str(error)
    done = list(zip(names, moved, strict=False))
    if as_json:
        click.echo(json.dumps([{"trigger": name, "queued_as": str(path)} for name, path in done],
                              indent=2))
    else:
        for name, path in done:
            click.echo(f"{name} -> {path}")
    if problem:
        raise click.ClickException(problem)
