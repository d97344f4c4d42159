"""``starforge report``: per-agent numbers from the run history (``.claude/daemon/runs.jsonl``).

The history's own reader (``store/history.py``) reads the file; everything here is a pure
function over its records, so the numbers are tested without files or clocks.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starforge_daemon.client.costs import render_costs, spending
from starforge_daemon.client.markdown import cell, code
from starforge_daemon.client.table import markdown_table
from starforge_daemon.core.durations import duration_text
from starforge_daemon.core.models import OutcomeKind, iso_utc
from starforge_daemon.store import history
from starforge_daemon.store.results import ResultRecord

SLOWEST_LIMIT = 5
FAILED_LIMIT = 20
FAILED_KINDS = (OutcomeKind.FAILED, OutcomeKind.KILLED, OutcomeKind.LOST, OutcomeKind.OOM,
                OutcomeKind.STALLED, OutcomeKind.OVER_BUDGET)
_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB")


@dataclass(frozen=True)
class HistoryRecord:
    """A finished run of the history, as the report counts it: ``started`` and ``ended`` are
    unix seconds; CPU and peak memory are None on lines older than their accounting, and
    ``account`` is the record itself, for what the run reported of itself (cost, turns,
    tokens: ``costs.ACCOUNT``)."""

    run_id: str
    agent: str
    outcome: OutcomeKind
    started: float
    ended: float
    duration_s: float
    ticket: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    log: str | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    account: ResultRecord = field(default_factory=ResultRecord)

    @classmethod
    def of(cls, record: ResultRecord) -> HistoryRecord:
        """Raises ``ValueError`` for anything but a finished run's record."""
        if record.run_id is None or record.agent is None or record.duration_s is None:
            raise ValueError("not a finished run's record")
        return cls(record.run_id, record.agent, OutcomeKind(record.outcome),
                   _moment(record.started_at), _moment(record.ended_at), record.duration_s,
                   record.ticket, record.reason, record.exit_code, record.log,
                   record.cpu_seconds, record.peak_memory_bytes, record)


def _moment(text: str | None) -> float:
    """An ISO-8601 time with its time zone, as unix seconds; one without is refused, not
    guessed."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()


def finished_runs(records: list[ResultRecord], unreadable: int = 0) -> tuple[list[HistoryRecord], int]:
    """The finished runs among ``records``, and how many lines are skipped: the ``unreadable``
    ones (a torn last line, say) and those that are no finished run. The lines of triggers
    archived without a run (invalid, duplicate, skipped...) are left out, not skipped."""
    runs, skipped = [], unreadable
    for record in records:
        if record.run_id is None and record.outcome is not None and record.trigger is not None:
            continue
        try:
            runs.append(HistoryRecord.of(record))
        except ValueError:
            skipped += 1
    return runs, skipped


def parse_history(lines: list[str]) -> tuple[list[HistoryRecord], int]:
    """The finished runs of the history's ``lines``, and how many lines are skipped."""
    return finished_runs(*history.parse_history(lines))


def read_history(path: Path) -> tuple[list[HistoryRecord], int]:
    """The finished runs of ``runs.jsonl``; a missing file is an empty history."""
    return finished_runs(*history.read_history(path))


def select(records: list[HistoryRecord], since_s: float | None, now: float) -> list[HistoryRecord]:
    """Runs that ended within the last ``since_s`` seconds (all runs when None)."""
    if since_s is None:
        return list(records)
    return [record for record in records if record.ended >= now - since_s]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of them <= it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _counts(records: list[HistoryRecord], hours: float | None) -> dict[str, Any]:
    """The numbers of one row; CPU adds up and peak memory is the highest of the runs that
    have them (None when none has)."""
    durations = [record.duration_s for record in records]
    kinds = [record.outcome for record in records]
    cpu = [record.cpu_seconds for record in records if record.cpu_seconds is not None]
    peaks = [record.peak_memory_bytes for record in records
             if record.peak_memory_bytes is not None]
    return {
        "runs": len(records),
        "succeeded": kinds.count(OutcomeKind.SUCCEEDED),
        "failed": sum(kinds.count(kind) for kind in FAILED_KINDS),
        "timed_out": kinds.count(OutcomeKind.TIMED_OUT),
        "median_s": round(statistics.median(durations), 3) if durations else None,
        "p95_s": round(percentile(durations, 0.95), 3) if durations else None,
        "runs_per_hour": round(len(records) / hours, 2) if hours else None,
        "cpu_seconds": round(sum(cpu), 3) if cpu else None,
        "peak_memory_bytes": max(peaks, default=None),
    }


def _run_entry(record: HistoryRecord) -> dict[str, Any]:
    return {"run_id": record.run_id, "agent": record.agent,
            "ticket": record.ticket,
            "outcome": record.outcome.value, "reason": record.reason,
            "exit_code": record.exit_code, "ended_at": iso_utc(record.ended),
            "duration_s": record.duration_s, "log": record.log}


def summarize(records: list[HistoryRecord], *, now: float, since_s: float | None = None,
              since_text: str | None = None, skipped: int = 0,
              source: str = "runs.jsonl") -> dict[str, Any]:
    """The whole report as one JSON-ready document.

    ``runs_per_hour`` divides each agent's runs by the hours from the first selected run's
    start to the last one's end: the same span for every agent, so the rows add up to the total.
    """
    chosen = select(records, since_s, now)
    first = min((record.started for record in chosen), default=None)
    last = max((record.ended for record in chosen), default=None)
    span = (last - first) if first is not None and last is not None else None
    hours = span / 3600 if span and span > 0 else None
    by_agent: dict[str, list[HistoryRecord]] = defaultdict(list)
    for record in chosen:
        by_agent[record.agent].append(record)
    failed = sorted((record for record in chosen if record.outcome is not OutcomeKind.SUCCEEDED),
                    key=lambda record: record.ended, reverse=True)
    slowest = sorted(chosen, key=lambda record: record.duration_s, reverse=True)
    return {
        "history": source,
        "generated_at": iso_utc(now),
        "since": since_text,
        "since_at": iso_utc(now - since_s) if since_s is not None else None,
        "first_started_at": iso_utc(first),
        "last_ended_at": iso_utc(last),
        "span_s": round(span, 3) if span is not None else None,
        "skipped_lines": skipped,
        "agents": [{"agent": agent, **_counts(runs, hours)}
                   for agent, runs in sorted(by_agent.items())],
        "total": _counts(chosen, hours),
        "slowest": [_run_entry(record) for record in slowest[:SLOWEST_LIMIT]],
        "failed": [_run_entry(record) for record in failed[:FAILED_LIMIT]],
        "failed_total": len(failed),
        "costs": spending(chosen),
    }


AGENT_HEADERS = ("agent", "runs", "ok", "failed", "timed out", "median", "p95", "runs/h", "CPU",
                 "peak memory")


def agent_row(name: str, counts: dict[str, Any]) -> list[Any]:
    """One agent's numbers (or the total's) as the cells of a table row."""
    rate = counts["runs_per_hour"]
    return [name, counts["runs"], counts["succeeded"], counts["failed"], counts["timed_out"],
            duration_text(counts["median_s"], tenths=True),
            duration_text(counts["p95_s"], tenths=True),
            "-" if rate is None else f"{rate:.1f}",
            duration_text(counts["cpu_seconds"], tenths=True),
            bytes_text(counts["peak_memory_bytes"])]


def bytes_text(count: int | None) -> str:
    """``512 B``, ``312 MiB``, ``1.5 GiB``: binary units, one decimal below 10; "-" for None."""
    if count is None:
        return "-"
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in _BYTE_UNITS:
        value /= 1024
        if value < 1024 or unit == _BYTE_UNITS[-1]:
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown: a table per agent, what the runs cost, then the slowest and
    the failed runs."""
    lines = ["# starforge report", ""]
    total = doc["total"]
    window = (f" that ended in the last {doc['since']} (since {doc['since_at']})"
              if doc["since"] else "")
    if not total["runs"]:
        lines.append(f"No runs in `{doc['history']}`{window}.")
    else:
        lines.append(f"{total['runs']} runs in `{doc['history']}`{window}, from "
                     f"{doc['first_started_at']} to {doc['last_ended_at']} "
                     f"({duration_text(doc['span_s'], tenths=True)}).")
    if doc["skipped_lines"]:
        lines.append(f"{doc['skipped_lines']} unreadable line(s) skipped.")
    if not total["runs"]:
        return "\n".join(lines) + "\n"
    rows = [agent_row(agent["agent"], agent) for agent in doc["agents"]]
    rows.append(agent_row("**all**", total))
    lines += ["", "## Per agent", "", markdown_table(AGENT_HEADERS, rows), "",
              "*failed* counts runs that failed, were killed or were lost; *runs/h* divides the "
              "runs by the hours from the first run's start to the last run's end; *CPU* adds "
              "up the runs' CPU time and *peak memory* is the highest of their peaks, both from "
              "the runs that recorded them (\"-\": none did)."]
    lines += render_costs(doc["costs"])
    slow = [[code(run["run_id"]), run["agent"], cell(run["ticket"]),
             duration_text(run["duration_s"], tenths=True), run["outcome"], code(run["log"])]
            for run in doc["slowest"]]
    lines += ["", "## Slowest runs", "",
              markdown_table(["run", "agent", "ticket", "duration", "outcome", "log"], slow)]
    lines += ["", "## Failed runs", ""]
    if not doc["failed"]:
        lines.append("None.")
    else:
        failed = [[code(run["run_id"]), run["agent"], cell(run["ticket"]), run["ended_at"],
                   run["outcome"], cell(run["reason"]), code(run["log"])]
                  for run in doc["failed"]]
        lines.append(markdown_table(["run", "agent", "ticket", "ended", "outcome", "reason",
                                     "log"], failed))
        if doc["failed_total"] > len(doc["failed"]):
            lines += ["", f"...and {doc['failed_total'] - len(doc['failed'])} older ones "
                          "(narrow it with --since)."]
    return "\n".join(lines) + "\n"


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"
