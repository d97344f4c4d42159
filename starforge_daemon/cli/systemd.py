"""``starforge systemd``: write a systemd unit that runs this project's daemon."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths


def _owner(path: Path) -> tuple[str, str]:
    """User and group owning ``path`` (names, or numbers when they have none)."""
    import grp
    import pwd

    info = path.stat()
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return user, group


def _import_problem(python: str) -> str | None:
    """Why the unit's command could not load the CLI, as systemd would start it; None if it can.

    Catches a run from an uninstalled checkout (``bin/starforge``), where the package is found
    only through the current directory.
    """
    import subprocess

    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    try:
        result = subprocess.run([python, "-P", "-c", "import starforge_daemon.cli.main"], cwd="/",
                                env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=60)
    except OSError as error:
        return f"{python}: {error.strerror or error}"
    except subprocess.TimeoutExpired:
        return "it did not load within 60s"
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


@click.group()
def systemd() -> None:
    """Run this project's daemon under systemd."""


@systemd.command()
@click.option("--user", "user_unit", is_flag=True,
              help="A unit for `systemctl --user` that runs as you (default: a system unit that "
                   "runs as the owner of the project directory).")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the unit here instead of /etc/systemd/system or "
                   "~/.config/systemd/user.")
@pass_project
def install(paths: ProjectPaths, user_unit: bool, unit_dir: Path | None) -> None:
    """Write the systemd unit for this project and print the commands to enable it."""
    import getpass

    from starforge_daemon.client import units
    from starforge_daemon.client.units import Scope
    from starforge_daemon.store.instance import running_pid
    from starforge_daemon.store.settings import SettingsError, load_settings

    scope = Scope.USER if user_unit else Scope.SYSTEM
    try:
        settings = load_settings(paths)
        name = units.unit_name(paths.root)
    except (SettingsError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    python = sys.executable
    if not python or not os.path.isabs(python):
        raise click.ClickException("cannot tell the absolute path of this Python interpreter")
    problem = _import_problem(python)
    if problem:
        raise click.ClickException(
            f"{python} cannot load starforge_daemon outside this directory ({problem}); "
            "install the package into it first (python3 -m pip install ...)")
    run_as = _owner(paths.root) if scope is Scope.SYSTEM else None
    text = units.render_for(scope, paths.root, python, settings.AGENT_KILL_GRACE, run_as)
    target = (unit_dir or units.unit_dir(scope)) / name
    try:
        outcome = units.write_unit(target, text)
    except PermissionError as error:
        hint = "" if user_unit else " (run it as root, or install a user unit with --user)"
        raise click.ClickException(f"cannot write {target}: {error.strerror}{hint}") from None
    except OSError as error:
        raise click.ClickException(f"cannot write {target}: {error.strerror or error}") from None
    who = f"runs as {run_as[0]}" if run_as else "runs as you"
    click.echo(f"{outcome} {target}")
    click.echo(f"  {scope.value} unit for {paths.root}; {who}; ExecStart uses {python}")
    pid = running_pid(paths)
    if pid is not None:
        click.echo(f"note: a daemon started outside systemd runs now (pid {pid}); stop it first "
                   "(`starforge daemon stop`), or systemd's start finds it already running")
    click.echo("next:")
    for step in units.next_steps(scope, name, getpass.getuser() if user_unit else None):
        click.echo(f"  {step}")
