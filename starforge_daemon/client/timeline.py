"""The HTML report's timeline: one lane per agent, one bar per run from its start to its end,
coloured by its outcome, on a clock axis in UTC. Runs side by side are parallelism, space
between bars is idle time, red is failure: all of it seen at a glance."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starforge_daemon.client import svg
from starforge_daemon.client.costs import cost_text
from starforge_daemon.core.durations import duration_text
from starforge_daemon.core.models import OutcomeKind

if TYPE_CHECKING:
    from starforge_daemon.client.report import HistoryRecord

OUTCOME_COLOURS = {
    OutcomeKind.SUCCEEDED: "#2e9d48",
    OutcomeKind.FAILED: "#d63b3b",
    OutcomeKind.TIMED_OUT: "#e8871e",
    OutcomeKind.STALLED: "#a64fd1",
    OutcomeKind.OVER_BUDGET: "#8b5a2b",
    OutcomeKind.RATE_LIMITED: "#d9b500",
    OutcomeKind.KILLED: "#6b6b6b",
    OutcomeKind.OOM: "#8e1b3f",
    OutcomeKind.LOST: "#222222",
    OutcomeKind.CANCELLED: "#9aa5b1",
    OutcomeKind.SKIPPED: "#5fa8b5",
    OutcomeKind.INVALID: "#c4c4c4",
    OutcomeKind.DUPLICATE: "#e2d3b5",
}
WIDTH = 1100.0
AXIS = 26.0  # the clock labels above the lanes
LANE = 24.0
BAR = 16.0
RIGHT = 36.0  # room for half the last tick's label
MIN_BAR = 2.0  # a run too short to be seen at this scale is still this wide
MOST_TICKS = 10
_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
          21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400)


def tick_step(span: float) -> float:
    """The smallest round step that puts at most ``MOST_TICKS`` ticks on ``span`` seconds."""
    return next((step for step in _STEPS if span / step <= MOST_TICKS), _STEPS[-1])


def ticks(first: float, last: float) -> list[float]:
    """Round moments (multiples of the step in unix time) from ``first`` to ``last``."""
    step = tick_step(last - first)
    start = math.ceil(first / step)
    return [index * step for index in range(start, math.floor(last / step) + 1)]


def clock_text(moment: float, step: float, span: float) -> str:
    """A tick's label in UTC, as precise as its step needs: ``05:00:00.2``, ``05:00:10``,
    ``05:10``, ``10-25 05:00``, ``10-25``."""
    when = datetime.fromtimestamp(moment, UTC)
    if step >= 86400:
        return when.strftime("%m-%d")
    if span >= 86400:
        return when.strftime("%m-%d %H:%M")
    if step >= 60:
        return when.strftime("%H:%M")
    if step >= 1:
        return when.strftime("%H:%M:%S")
    return when.strftime("%H:%M:%S.") + f"{when.microsecond // 100_000}"


def run_text(record: HistoryRecord) -> str:
    """A bar's hover title: what the run was and how it went."""
    lines = [record.run_id,
             f"ticket {record.ticket or '-'} · {record.outcome.value} · "
             f"{duration_text(record.duration_s, tenths=True)} · "
             f"cost {cost_text(record.account.cost_usd)}"]
    if record.outcome is not OutcomeKind.SUCCEEDED and record.reason:
        lines.append(record.reason)
    return "\n".join(lines)


def timeline(runs: Sequence[HistoryRecord]) -> str:
    """The timeline of ``runs`` as an ``<svg>``; agents in name order, one lane each."""
    by_agent: dict[str, list[HistoryRecord]] = defaultdict(list)
    for run in runs:
        by_agent[run.agent].append(run)
    agents = sorted(by_agent)
    first = min(run.started for run in runs)
    last = max(run.ended for run in runs)
    span = max(last - first, 1e-3)
    plot = WIDTH - svg.LABEL_WIDTH - RIGHT

    def x_of(moment: float) -> float:
        return svg.LABEL_WIDTH + plot * (moment - first) / span

    height = AXIS + LANE * len(agents) + 4
    step = tick_step(span)
    body = [svg.rect(0.0, AXIS + index * LANE, WIDTH, LANE, "#f4f5f7")
            for index in range(1, len(agents), 2)]  # every other lane striped
    for moment in ticks(first, last):
        body.append(svg.line(x_of(moment), AXIS - 6, x_of(moment), height, "#dddddd"))
        body.append(svg.text(x_of(moment), AXIS - 10, clock_text(moment, step, span),
                             text_anchor="middle", fill="#555555"))
    for index, agent in enumerate(agents):
        top = AXIS + index * LANE
        bars = [svg.rect(x_of(run.started), top + (LANE - BAR) / 2,
                         max(x_of(run.ended) - x_of(run.started), MIN_BAR), BAR,
                         OUTCOME_COLOURS[run.outcome], run_text(run), class_="run",
                         data_outcome=run.outcome.value)
                for run in by_agent[agent]]
        name = svg.label(svg.LABEL_WIDTH - 8, top + LANE / 2 + 4, agent, text_anchor="end")
        body.append(svg.element("g", {"class": "lane", "data-agent": agent},
                                name + "".join(bars)))
    return svg.svg(WIDTH, height, body, f"timeline of {len(runs)} runs of {len(agents)} agents, "
                   "one lane per agent", class_="timeline")
