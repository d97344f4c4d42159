"""``starforge report --format html``: the report's numbers (``report.summarize``) as one HTML
page with pictures: a timeline of the runs, and duration and cost per agent as bars.

The page is self-contained: inline CSS and SVG, no script, nothing fetched (its
Content-Security-Policy forbids it), so it opens offline. Every text read from the history goes
through ``svg.escape``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from starforge_daemon.client.costs import SPEND_HEADERS, cost_text, spend_row, total_line
from starforge_daemon.client.report import AGENT_HEADERS, HistoryRecord, agent_row
from starforge_daemon.client.svg import BarRow, Segment, bar_chart, escape
from starforge_daemon.client.timeline import OUTCOME_COLOURS, timeline
from starforge_daemon.core.durations import duration_text
from starforge_daemon.core.models import OutcomeKind

STYLE = """
body { font-family: system-ui, sans-serif; color: #1f2328; margin: 24px; max-width: 1160px; }
h2 { margin-top: 28px; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code { font-size: 12px; }
.note { color: #57606a; font-size: 13px; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 16px; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 5px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
figure { margin: 0; }
"""
# nothing but this page's own inline styles: no script, no fetch, no frame
POLICY = "default-src 'none'; style-src 'unsafe-inline'"
MEDIAN_COLOUR, P95_COLOUR, COST_COLOUR = "#3b6fd6", "#b7cbf2", "#7a52c7"


def _code(value: str | None) -> str:
    return f"<code>{escape(value)}</code>" if value else "-"


def _outcome(value: str) -> str:
    colour = OUTCOME_COLOURS[OutcomeKind(value)]
    return f'<span class="swatch" style="background:{colour}"></span>{escape(value)}'


_RUN_CELLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "run": lambda run: _code(run["run_id"]),
    "agent": lambda run: escape(run["agent"]),
    "ticket": lambda run: escape(run["ticket"] or "-"),
    "ended": lambda run: escape(run["ended_at"]),
    "duration": lambda run: escape(duration_text(run["duration_s"], tenths=True)),
    "outcome": lambda run: _outcome(run["outcome"]),
    "reason": lambda run: escape(run["reason"] or "-"),
    "cost": lambda run: escape(cost_text(run["cost_usd"])),
    "turns": lambda run: escape("-" if run["turns"] is None else run["turns"]),
    "log": lambda run: _code(run["log"]),
}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of cells that are markup already."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table of plain values, each escaped."""
    return _table(headers, [[escape("-" if value is None else value) for value in row]
                            for row in rows])


def _runs_table(runs: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return _table(columns, [[_RUN_CELLS[column](run) for column in columns] for run in runs])


def _overview(doc: dict[str, Any]) -> list[str]:
    total = doc["total"]
    window = (f" that ended in the last {escape(doc['since'])} (since {escape(doc['since_at'])})"
              if doc["since"] else "")
    source = _code(doc["history"])
    lines = [f"<p>{total['runs']} runs in {source}{window}, from "
             f"{escape(doc['first_started_at'])} to {escape(doc['last_ended_at'])} "
             f"({escape(duration_text(doc['span_s'], tenths=True))}).</p>" if total["runs"]
             else f"<p>No runs in {source}{window}.</p>"]
    if doc["skipped_lines"]:
        lines.append(f"<p>{doc['skipped_lines']} unreadable line(s) skipped.</p>")
    return lines


def _legend(runs: Sequence[HistoryRecord]) -> str:
    counts = Counter(run.outcome for run in runs)
    items = "".join(f"<li>{_outcome(kind.value)} ({counts[kind]})</li>"
                    for kind in OUTCOME_COLOURS if counts[kind])
    return f'<ul class="legend">{items}</ul>'


def _duration_chart(doc: dict[str, Any]) -> str:
    rows = [BarRow(agent["agent"], f"median {duration_text(agent['median_s'], tenths=True)} · "
                                   f"p95 {duration_text(agent['p95_s'], tenths=True)}",
                   [Segment(agent["p95_s"], P95_COLOUR, f"{agent['agent']}: p95 "
                                                        f"{duration_text(agent['p95_s'])}"),
                    Segment(agent["median_s"], MEDIAN_COLOUR, f"{agent['agent']}: median "
                                                              f"{duration_text(agent['median_s'])}")])
            for agent in doc["agents"]]
    return bar_chart(rows, "run duration per agent: median, and p95 behind it")


def _cost_chart(costs: dict[str, Any]) -> str:
    rows = [BarRow(agent["agent"], cost_text(agent["cost_usd"]),
                   [] if agent["cost_usd"] is None else
                   [Segment(agent["cost_usd"], COST_COLOUR,
                            f"{agent['agent']}: {cost_text(agent['cost_usd'])} from "
                            f"{agent['runs_with_cost']} of {agent['runs']} runs")])
            for agent in costs["agents"]]
    return bar_chart(rows, "cost per agent in US dollars")


def _per_agent(doc: dict[str, Any]) -> list[str]:
    rows = [agent_row(agent["agent"], agent) for agent in doc["agents"]]
    rows.append(agent_row("all", doc["total"]))
    return ["<h2>Per agent</h2>",
            '<div class="charts"><figure><figcaption>Duration: median, and p95 behind it'
            f"</figcaption>{_duration_chart(doc)}</figure>"
            f"<figure><figcaption>Cost (USD)</figcaption>{_cost_chart(doc['costs'])}</figure></div>",
            _text_table(AGENT_HEADERS, rows),
            '<p class="note">failed counts runs that failed, stalled, went over budget or out of '
            "memory, were killed or were lost; runs/h divides the runs by the hours from the first "
            "run's start to the last run's end; CPU adds up the runs' CPU time and peak memory is "
            "the highest of their peaks, from the runs that recorded them.</p>"]


def _costs(costs: dict[str, Any]) -> list[str]:
    agents = [spend_row(agent["agent"], agent) for agent in costs["agents"]]
    agents.append(spend_row("all", costs["total"]))
    lines = ["<h2>Cost</h2>", f"<p>{escape(total_line(costs['total']))}</p>",
             _text_table(["agent", *SPEND_HEADERS], agents)]
    if costs["tickets"]:
        tickets = [spend_row(ticket["ticket"], ticket) for ticket in costs["tickets"]]
        lines += ["<h3>Per ticket</h3>", _text_table(["ticket", *SPEND_HEADERS], tickets)]
    lines.append("<h3>Most expensive runs</h3>")
    lines.append(_runs_table(costs["most_expensive"], ["run", "agent", "ticket", "cost", "turns",
                                                       "duration"])
                 if costs["most_expensive"] else "<p>None reported a cost.</p>")
    return lines


def render_html(doc: dict[str, Any], runs: Sequence[HistoryRecord]) -> str:
    """The report ``doc`` (``report.summarize``) as an HTML page, with the timeline of ``runs``
    (the records it counted: ``report.select``)."""
    parts = _overview(doc)
    if runs:
        parts += ["<h2>Timeline</h2>",
                  '<p class="note">One lane per agent, one bar per run from its start to its end '
                  "(UTC); hover a bar for the run.</p>", _legend(runs), timeline(runs)]
        parts += _per_agent(doc)
        parts += _costs(doc["costs"])
        parts += ["<h2>Slowest runs</h2>",
                  _runs_table(doc["slowest"], ["run", "agent", "ticket", "duration", "outcome",
                                               "log"]),
                  "<h2>Failed runs</h2>",
                  _runs_table(doc["failed"], ["run", "agent", "ticket", "ended", "outcome",
                                              "reason", "log"]) if doc["failed"] else "<p>None.</p>"]
        if doc["failed_total"] > len(doc["failed"]):
            parts.append(f"<p>...and {doc['failed_total'] - len(doc['failed'])} older ones "
                         "(narrow it with --since).</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>starforge report</title><style>{STYLE}</style></head>\n<body>\n"
            "<h1>starforge report</h1>\n" + "\n".join(parts) + "\n</body></html>\n")
