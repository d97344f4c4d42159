"""``starforge completion bash|zsh|fish``, and what the shells complete: agent names, trigger
names and run ids, read from the project's files when the user presses TAB."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import click

from starforge_daemon.store.paths import ProjectPaths, locate

COMPLETE_VAR = "_STARFORGE_COMPLETE"

Completer = Callable[[click.Context, click.Parameter, str], list[str]]


def _project(ctx: click.Context) -> ProjectPaths | None:
    """The project the command line names (``--project-dir``), or the one found here."""
    place = locate(ctx.find_root().params.get("project_dir"))
    return None if place.problem else place.paths


def _names(folder: os.PathLike[str] | str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _matching(words: Iterable[str | None], incomplete: str) -> list[str]:
    return sorted({word for word in words if word and word.startswith(incomplete)})


def _completer(words: Callable[[ProjectPaths], Iterable[str | None]]) -> Completer:
    """A click ``shell_complete`` callback offering ``words(project)`` that start with what
    was typed; nothing outside a project. Modules are imported only when TAB is pressed."""

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        paths = _project(ctx)
        return [] if paths is None else _matching(words(paths), incomplete)

    return complete


def _trigger_names(folder: os.PathLike[str] | str) -> list[str]:
    from starforge_daemon.intake.triggers import is_trigger_name

    return [name for name in _names(folder) if is_trigger_name(name)]


def _agents(paths: ProjectPaths) -> list[str | None]:
    """Agents with a slot, a run log or a queued trigger."""
    from starforge_daemon.core.runids import agent_of
    from starforge_daemon.store.atomic import read_json_object

    queued = [read_json_object(paths.triggers / name).get("to_agent")
              for name in _trigger_names(paths.triggers)]
    logged = [agent_of(name) for name in _names(paths.logs)]
    return [*read_json_object(paths.slots_file), *logged,
            *(agent for agent in queued if isinstance(agent, str))]


def _run_ids(paths: ProjectPaths) -> list[str]:
    from starforge_daemon.core.runids import log_run_id

    return [run_id.text for name in _names(paths.logs) if (run_id := log_run_id(name))]


complete_agents = _completer(_agents)
complete_queued = _completer(lambda paths: _trigger_names(paths.triggers))
complete_failed = _completer(lambda paths: _trigger_names(paths.failed))
complete_run_ids = _completer(_run_ids)


@click.command(short_help="Print the shell completion script (bash, zsh or fish).")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL; it completes commands, options, agent names,
    trigger names and run ids.

    \b
    bash:  eval "$(starforge completion bash)"    (in ~/.bashrc)
    zsh:   eval "$(starforge completion zsh)"     (in ~/.zshrc)
    fish:  starforge completion fish | source     (in ~/.config/fish/config.fish)
    """
    from click.shell_completion import BashComplete, FishComplete, ZshComplete

    complete = {"bash": BashComplete, "zsh": ZshComplete, "fish": FishComplete}[shell]
    try:
        script = complete(ctx.find_root().command, {}, "starforge", COMPLETE_VAR).source()
    except RuntimeError as error:  # bash older than 4.4
        raise click.ClickException(str(error)) from None
    click.echo(script)
