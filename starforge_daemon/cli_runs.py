"""``starforge logs`` and ``starforge report``: what the runs printed, and how they went."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import runlogs
from .logupkeep import agent_of
from .paths import ProjectPaths
from .report import parse_duration, read_history, render_json, render_markdown, summarize


class Duration(click.ParamType):
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w``: converted to ``(text, seconds)``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, float]:
        if isinstance(value, tuple):
            return value
        try:
            return str(value).strip(), parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _choose_log(paths: ProjectPaths, agent: str | None, ticket: str | None, run_id: str | None,
                daemon_log: bool) -> Path:
    if daemon_log:
        if agent or ticket or run_id:
            raise click.UsageError("--daemon shows the event log; it takes no AGENT, --ticket "
                                   "or --run")
        if not paths.daemon_log.is_file():
            raise runlogs.LogNotFound(f"no event log yet at {paths.daemon_log}")
        return paths.daemon_log
    if run_id:
        if ticket:
            raise click.UsageError("--run names one run already; leave out --ticket")
        try:
            path = runlogs.run_log(paths, run_id)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--run") from None
        if agent and agent_of(path.name) != agent:
            raise click.UsageError(f"run {run_id} is not a run of {agent}")
        return path
    if not agent:
        raise click.UsageError("name an AGENT, or use --run RUN_ID or --daemon")
    return runlogs.ticket_log(paths, agent, ticket) if ticket else runlogs.latest_log(paths, agent)


@click.command()
@click.argument("agent", required=False)
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing what is appended, like tail -f, until Ctrl-C.")
@click.option("--ticket", help="The latest run of AGENT for this ticket.")
@click.option("--run", "run_id", metavar="RUN_ID",
              help="This run's log (.claude/logs/RUN_ID.log); AGENT is then optional.")
@click.option("--daemon", "daemon_log", is_flag=True,
              help="The daemon's event log (.claude/logs/daemon.log) instead.")
@click.option("-n", "--lines", type=click.IntRange(min=0),
              help="Only the last LINES lines (default: the whole log).")
@click.pass_obj
def logs(paths: ProjectPaths, agent: str | None, follow: bool, ticket: str | None,
         run_id: str | None, daemon_log: bool, lines: int | None) -> None:
    """Show the log of AGENT's latest run (or of a chosen run, or the daemon's event log).

    The log goes to stdout and its path to stderr. A compressed log (.log.gz) is shown
    decompressed. With -f the file chosen at the start is followed, through rotation and
    truncation, until Ctrl-C (which exits 0).
    """
    try:
        path = _choose_log(paths, agent, ticket, run_id, daemon_log)
    except runlogs.LogNotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"==> {path} <==", err=True)
    out = click.get_binary_stream("stdout")

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    try:
        offset = runlogs.show(path, write, lines)
        if not follow:
            return
        if path.name.endswith(".gz"):
            click.echo("(a compressed log belongs to a finished run: nothing to follow)", err=True)
            return
        runlogs.follow(path, write, offset, note=lambda text: click.echo(text, err=True))
    except KeyboardInterrupt:
        if not follow:
            raise
    except BrokenPipeError:  # the reader is gone (`| head`): stop quietly, like cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None


@click.command()
@click.option("--since", type=Duration(), metavar="DURATION",
              help="Only runs that ended this long ago or less: 90s, 30m, 24h, 7d, 2w.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report to this file.")
@click.pass_obj
def report(paths: ProjectPaths, since: tuple[str, float] | None, fmt: str,
           output: Path | None) -> None:
    """Runs per agent from .claude/daemon/runs.jsonl: runs, successes, failures, timeouts,
    median and p95 duration, runs per hour; then the slowest and the failed runs with their logs.

    "failed" counts runs that failed, were killed or were lost. "runs/h" divides an agent's
    runs by the hours from the first selected run's start to the last one's end (the same span
    for every agent). p95 is the nearest-rank percentile.
    """
    records, skipped = read_history(paths.history_file)
    doc = summarize(records, now=time.time(), since_s=since[1] if since else None,
                    since_text=since[0] if since else None, skipped=skipped,
                    source=str(paths.history_file.relative_to(paths.root)))
    text = render_json(doc) if fmt == "json" else render_markdown(doc)
    click.echo(text, nl=False)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error}") from None
