"""``starforge logs``, ``starforge runs`` and ``starforge report``: what the runs printed, which
ones are over, and how they went."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from starforge_daemon.cli.completion import complete_agents, complete_run_ids
from starforge_daemon.cli.project import pass_project
from starforge_daemon.store.paths import ProjectPaths

if TYPE_CHECKING:
    from starforge_daemon.client.listing import Finished


class Duration(click.ParamType):
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w``: converted to ``(text, seconds)``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, float]:
        from starforge_daemon.core.durations import parse_duration

        if isinstance(value, tuple):
            return value
        try:
            return str(value).strip(), parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _choose_log(paths: ProjectPaths, agent: str | None, ticket: str | None, run_id: str | None,
                daemon_log: bool) -> Path:
    from starforge_daemon.client import runlogs
    from starforge_daemon.core.runids import agent_of

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


def _note(text: str) -> None:
    click.echo(text, err=True)


def _follow(paths: ProjectPaths, path: Path, offset: int, write: Callable[[bytes], None],
            finish: Callable[[], None]) -> None:
    """Follow ``path``; a run's log until the run ends, then ``finish()`` and say how it ended."""
    from starforge_daemon.client import runlogs
    from starforge_daemon.core.runids import log_run_id

    run_id = log_run_id(path.name)
    if run_id is None:  # the daemon's log: until Ctrl-C
        runlogs.follow(path, write, offset, note=_note)
        return
    watch = runlogs.RunWatch(paths, run_id.text, run_id.agent)
    ends: list[runlogs.RunEnd] = []

    def done() -> bool:
        end = watch.ended()
        if end is not None:
            ends.append(end)
        return end is not None

    runlogs.follow(path, write, offset, note=_note, done=done)
    finish()
    _note(f"==> run {run_id.text} ended: {ends[0]} <==")


def follow_run_log(paths: ProjectPaths, path: Path) -> None:
    """Print a run's log rendered as ``logs -f`` does, until the run ends."""
    from starforge_daemon.client import runlogs
    from starforge_daemon.client.stream_render import LogRenderer

    out = click.get_binary_stream("stdout")
    renderer = LogRenderer()

    def put(data: bytes) -> None:
        if data:
            out.write(data)
            out.flush()

    offset = runlogs.show(path, lambda data: put(renderer.feed(data)))
    _follow(paths, path, offset, lambda data: put(renderer.feed(data)),
            lambda: put(renderer.finish()))


@click.command(short_help="Show or follow a run's log, or the daemon's.")
@click.argument("agent", required=False, shell_complete=complete_agents)
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing what is appended, like tail -f, until the run ends (the "
                   "daemon's log: until Ctrl-C).")
@click.option("--ticket", help="The latest run of AGENT for this ticket.")
@click.option("--run", "run_id", metavar="RUN_ID", shell_complete=complete_run_ids,
              help="This run's log (.claude/logs/RUN_ID.log); AGENT is then optional.")
@click.option("--daemon", "daemon_log", is_flag=True,
              help="The daemon's event log (.claude/logs/daemon.log) instead.")
@click.option("-n", "--lines", type=click.IntRange(min=0),
              help="Only the last LINES lines of the log file (default: the whole log).")
@click.option("--raw", is_flag=True,
              help="Print the log's bytes as they are: the JSON lines of a Claude Code, Codex "
                   "or Gemini run are not rendered.")
@pass_project
def logs(paths: ProjectPaths, agent: str | None, follow: bool, ticket: str | None,
         run_id: str | None, daemon_log: bool, lines: int | None, raw: bool) -> None:
    """Show the log of AGENT's latest run (or of a chosen run, or the daemon's event log).

    The log goes to stdout and its path to stderr. A compressed log (.log.gz) is shown
    decompressed. A run log of JSON events (Claude Code's stream-json, Codex's exec --json,
    Gemini's stream-json) is shown as readable text: the model's words, each tool call
    ("→ Bash: make test") with the first lines of its output, and the result ("[result]
    success · 3 turns · $0.0217 · 2.1 s"); other lines (stderr, a text agent's output) are
    printed as they are, and --raw prints the whole log so. With -f the file chosen at the
    start is followed, through rotation and truncation, until its run ends; then how it ended
    goes to stderr ("==> run RUN_ID ended: failed (exited with status 3) <==") and logs exits
    0. The daemon's log is followed until Ctrl-C (which exits 0).
    """
    from starforge_daemon.client import runlogs
    from starforge_daemon.client.stream_render import LogRenderer

    try:
        path = _choose_log(paths, agent, ticket, run_id, daemon_log)
    except runlogs.LogNotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"==> {path} <==", err=True)
    out = click.get_binary_stream("stdout")
    renderer = None if raw or daemon_log else LogRenderer()

    def put(data: bytes) -> None:
        if data:
            out.write(data)
            out.flush()

    def write(data: bytes) -> None:
        put(renderer.feed(data) if renderer else data)

    def finish() -> None:
        """Print what the renderer still holds: the log's last line if it has no newline."""
        if renderer:
            put(renderer.finish())

    try:
        offset = runlogs.show(path, write, lines)
        if not follow or path.name.endswith(".gz"):
            finish()
            if follow:
                click.echo("(a compressed log belongs to a finished run: nothing to follow)",
                           err=True)
            return
        _follow(paths, path, offset, write, finish)
    except KeyboardInterrupt:
        if not follow:
            raise
    except BrokenPipeError:  # the reader is gone (`| head`): stop quietly, like cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror or error}") from None


def _finished_text(found: list[Finished]) -> str:
    from starforge_daemon.client.table import text_table

    if not found:
        return "(no finished runs)"
    rows = [[item.ended_at, item.name, item.agent, item.ticket, item.outcome,
             (item.reason or "-")[:60], item.run_id] for item in found]
    return text_table(["ENDED", "TRIGGER", "AGENT", "TICKET", "OUTCOME", "REASON", "RUN"], rows)


@click.command(short_help="List the finished runs (--failed: the failed ones).")
@click.option("--failed", is_flag=True,
              help="Only the triggers in processed/failed/: failed, timed out, killed, lost, "
                   "stopped or cancelled (what `starforge retry` puts back).")
@click.option("--agent", "agent", metavar="AGENT", shell_complete=complete_agents,
              help="Only the runs of AGENT (or of the pool AGENT).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@pass_project
def runs(paths: ProjectPaths, failed: bool, agent: str | None, as_json: bool) -> None:
    """The archived triggers whose run is over, oldest first, from the result file beside
    each: when it ended, agent, ticket, outcome, reason, run id (for `starforge logs --run`).

    Read from processed/ and processed/failed/; works with or without a running daemon.
    """
    from starforge_daemon.client.listing import finished_triggers

    found = finished_triggers(paths, failed_only=failed, agent=agent)
    click.echo(json.dumps([item.to_json() for item in found], indent=2) if as_json
               else _finished_text(found))


@click.command(short_help="Runs per agent: outcomes, durations, throughput, cost.")
@click.option("--since", type=Duration(), metavar="DURATION",
              help="Only runs that ended this long ago or less: 90s, 30m, 24h, 7d, 2w.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json", "html"]),
              default="markdown", show_default=True,
              help="html: one page with a timeline of the runs and charts, that opens offline.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report to this file (html: only to this file).")
@pass_project
def report(paths: ProjectPaths, since: tuple[str, float] | None, fmt: str,
           output: Path | None) -> None:
    """Runs per agent from .claude/daemon/runs.jsonl: runs, successes, failures, timeouts,
    median and p95 duration, runs per hour; what the runs cost (USD and tokens, per agent, per
    ticket and in total) and the most expensive runs; then the slowest and the failed runs with
    their logs.

    "failed" counts runs that failed, stalled, went over budget or out of memory, were killed
    or were lost. "runs/h" divides an agent's
    runs by the hours from the first selected run's start to the last one's end (the same span
    for every agent). p95 is the nearest-rank percentile. Cost and tokens add up what the runs
    reported of themselves; an attempt that was tried again counts too. The html page adds a
    timeline (one lane per agent, one bar per run, coloured by outcome) and bar charts.
    """
    import time

    from starforge_daemon.client.report import (
        read_history,
        render_json,
        render_markdown,
        select,
        summarize,
    )

    try:
        records, skipped = read_history(paths.history_file)
    except OSError as error:
        raise click.ClickException(f"cannot read {paths.history_file}: "
                                   f"{error.strerror or error}") from None
    now, since_s = time.time(), since[1] if since else None
    doc = summarize(records, now=now, since_s=since_s, since_text=since[0] if since else None,
                    skipped=skipped, source=str(paths.history_file.relative_to(paths.root)))
    if fmt == "html":
        from starforge_daemon.client.report_html import render_html

        text = render_html(doc, select(records, since_s, now))
    else:
        text = render_json(doc) if fmt == "json" else render_markdown(doc)
    if fmt != "html" or output is None:  # a page goes to its file, not over the terminal
        click.echo(text, nl=False)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error.strerror or error}"
                                       ) from None
