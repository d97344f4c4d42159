"""``starforge doctor``: prints every check of :mod:`preflight`, one line each."""

from __future__ import annotations

import sys

import click

from starforge_daemon.store.paths import ProjectPaths


@click.command()
@click.pass_obj
def doctor(paths: ProjectPaths) -> None:
    """Check this project: settings, agent program, daemon, trigger folder, git.

    One line per check (✓ or ✗ and what was found); exit 0 when all pass, 1 otherwise.
    """
    from starforge_daemon.client.preflight import diagnose  # the settings and git machinery, only when asked

    checks = diagnose(paths)
    width = max(len(check.name) for check in checks)
    for check in checks:
        click.echo(f"{'✓' if check.ok else '✗'} {check.name:<{width}}  {check.detail}")
    sys.exit(0 if all(check.ok for check in checks) else 1)
