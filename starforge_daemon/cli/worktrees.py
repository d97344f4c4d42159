"""``starforge worktrees [--json]`` and ``starforge worktrees clean``: the runs' git worktrees."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from starforge_daemon.cli.project import require_project
from starforge_daemon.store.paths import ProjectPaths

if TYPE_CHECKING:
    from starforge_daemon.workspaces.worktrees import WorktreeInfo


def _state(info: WorktreeInfo) -> str:
    state = {None: "unknown", 0: "clean"}.get(info.changes, f"dirty ({info.changes})")
    return f"busy, {state}" if info.runs else state


def _table(found: list[WorktreeInfo]) -> str:
    from starforge_daemon.client.table import text_table

    if not found:
        return "(no run worktrees)"
    rows = [[info.name, info.branch or "(detached)", info.agent or "-", info.ticket or "-",
             f"{info.last_run} ({info.last_outcome or 'running'})" if info.last_run else "-",
             _state(info)] for info in found]
    return text_table(["WORKTREE", "BRANCH", "AGENT", "TICKET", "LAST RUN", "STATE"], rows)


@click.group(invoke_without_command=True, short_help="List (or clean) the runs' git worktrees.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def worktrees(ctx: click.Context, as_json: bool) -> None:
    """List the runs' git worktrees (.claude/worktrees/): branch, agent, ticket, last run,
    and whether they hold uncommitted changes (dirty) or not (clean). "busy" means a run
    works there now."""
    from starforge_daemon.workspaces.git import GitError
    from starforge_daemon.workspaces.worktrees import describe_worktrees

    paths = require_project(ctx)
    if ctx.invoked_subcommand is not None:
        if as_json:
            raise click.UsageError("--json only goes with the listing")
        return
    try:
        found = describe_worktrees(paths)
    except GitError as error:
        raise click.ClickException(f"cannot list worktrees: {error}") from None
    click.echo(json.dumps([info.to_json() for info in found], indent=2) if as_json
               else _table(found))


@worktrees.command()
@click.pass_obj
def clean(paths: ProjectPaths) -> None:
    """Remove the clean worktrees that no run is using; their branches stay.

    A worktree with uncommitted changes or untracked files is kept, never forced.
    """
    from starforge_daemon.workspaces.git import GitError
    from starforge_daemon.workspaces.worktrees import clean_worktrees

    try:
        notes = clean_worktrees(paths)
    except GitError as error:
        raise click.ClickException(f"cannot clean worktrees: {error}") from None
    except OSError as error:
        raise click.ClickException(f"cannot clean worktrees: {error.filename}: "
                                   f"{error.strerror or error}") from None
    click.echo("\n".join(notes) if notes else "(no run worktrees)")
