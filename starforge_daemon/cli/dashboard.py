"""``starforge top`` (or ``dashboard``): the live dashboard. Textual is an optional extra, so
this module loads it only when the command runs and says how to install it when it is
missing."""

from __future__ import annotations

import click

from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths

INSTALL_HINT = ("the dashboard needs Textual: pip install 'starforge-daemon[dashboard]' "
                "(or pip install textual)")


@click.command(short_help="A live, full-screen view of slots, queue, runs and events.")
@pass_project
def top(paths: ProjectPaths) -> None:
    """A live, full-screen view of the agents' slots, the waiting triggers and why they wait,
    the finished runs and the daemon's events, refreshed every second.

    Keys: p pauses or resumes the selected agent (P: everyone), s stops its run, c cancels the
    selected waiting trigger, l or Enter opens the selected run's log, Tab moves between
    panes, q quits. Works whether the daemon runs or not.
    """
    try:
        from starforge_daemon.cli.dashboard_app import Dashboard
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in ("textual", "rich"):
            raise
        raise click.ClickException(INSTALL_HINT) from None
    from starforge_daemon.client.dashboard_data import DashboardFeed
    from starforge_daemon.store.settings import SettingsError, load_settings

    try:
        feed = DashboardFeed(paths, load_settings(paths))
    except SettingsError as error:
        feed = DashboardFeed(paths, None, f"queue not shown: {error}")
    Dashboard(feed).run()
