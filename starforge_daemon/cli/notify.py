"""``starforge notify test``: one test message to every ``NOTIFY_URLS`` target, and what each
answered."""

from __future__ import annotations

import sys

import click

from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths


@click.group()
def notify() -> None:
    """Notifications (NOTIFY_URLS; see docs/notifications.md)."""


@notify.command()
@pass_project
def test(paths: ProjectPaths) -> None:
    """Send a test message to every NOTIFY_URLS target; prints ok or the error for each, and
    exits 1 when any failed."""
    from starforge_daemon.core.notice_kinds import split_urls
    from starforge_daemon.daemon.notify_sender import AppriseTarget, NotifySetupError
    from starforge_daemon.store.settings import SettingsError, load_settings

    try:
        urls = split_urls(load_settings(paths).NOTIFY_URLS)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    if not urls:
        raise click.ClickException("NOTIFY_URLS is empty: there is nowhere to send to")
    failed = 0
    for url in urls:
        try:
            target = AppriseTarget(url)
        except NotifySetupError as error:
            failed += 1
            click.echo(f"FAILED {url.split('://')[0]}://...: {error}")
            continue
        error_text = target.send(f"starforge {paths.root.name}: test",
                                 f"a test message from starforge notify test in {paths.root}")
        failed += error_text is not None
        click.echo(f"ok     {target.name}" if error_text is None
                   else f"FAILED {target.name}: {error_text}")
    sys.exit(1 if failed else 0)
