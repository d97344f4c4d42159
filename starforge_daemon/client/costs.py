"""The cost part of ``starforge report``: what the runs reported they spent (USD, turns, tokens)
per agent, per ticket and in total, and the most expensive runs.

Pure functions over the history's records, like the rest of the report. A run tried again has
a history line of its own (with ``retry_at``) and counts like any other: its money was spent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from starforge_daemon.client.markdown import cell, code
from starforge_daemon.client.table import markdown_table
from starforge_daemon.core.durations import duration_text
from starforge_daemon.store.results import ResultRecord

if TYPE_CHECKING:
    from starforge_daemon.client.report import HistoryRecord

COSTLIEST_LIMIT = 5
TICKET_LIMIT = 10
TOKENS = ("tokens_in", "tokens_out", "cache_read_tokens", "cache_creation_tokens")
ACCOUNT = ("session_id", "model", "turns", *TOKENS, "cost_usd")  # what a run says it used


def _sum(values: Iterable[int | None]) -> int | None:
    """The sum of the known values; None when none is."""
    known = [value for value in values if value is not None]
    return sum(known) if known else None


@dataclass(frozen=True)
class Spend:
    """What a group of runs spent: the sums of what they reported, None where none reported it.
    ``runs_with_cost`` and ``runs_without_cost`` say how much of the group the cost covers."""

    runs: int
    runs_with_cost: int
    runs_without_cost: int
    cost_usd: float | None
    turns: int | None
    tokens_in: int | None
    tokens_out: int | None
    cache_read_tokens: int | None
    cache_creation_tokens: int | None

    @classmethod
    def of(cls, accounts: Sequence[ResultRecord]) -> Spend:
        costs = [account.cost_usd for account in accounts if account.cost_usd is not None]
        return cls(runs=len(accounts), runs_with_cost=len(costs),
                   runs_without_cost=len(accounts) - len(costs),
                   cost_usd=round(sum(costs), 6) if costs else None,
                   **{name: _sum(getattr(account, name) for account in accounts)
                      for name in ("turns", *TOKENS)})


def _spend_by(records: Iterable[HistoryRecord],
              key: Callable[[HistoryRecord], str | None]) -> dict[str, Spend]:
    """What the records spent, per value of ``key`` (records whose key is None are left out)."""
    groups: dict[str, list[ResultRecord]] = defaultdict(list)
    for record in records:
        name = key(record)
        if name is not None:
            groups[name].append(record.account)
    return {name: Spend.of(accounts) for name, accounts in groups.items()}


def _costly_run(record: HistoryRecord) -> dict[str, Any]:
    return {"run_id": record.run_id, "agent": record.agent, "ticket": record.ticket,
            "outcome": record.outcome.value, "duration_s": record.duration_s,
            **{name: getattr(record.account, name) for name in ACCOUNT}}


def spending(records: Sequence[HistoryRecord]) -> dict[str, Any]:
    """The cost part of the report as JSON: per agent (every agent), per ticket (those whose
    runs reported a cost, the ``TICKET_LIMIT`` costliest), in total, and the
    ``COSTLIEST_LIMIT`` costliest runs."""
    tickets = sorted((-spend.cost_usd, ticket, spend) for ticket, spend in
                     _spend_by(records, lambda record: record.ticket).items()
                     if spend.cost_usd is not None)
    priced = [(record.account.cost_usd, record) for record in records
              if record.account.cost_usd is not None]
    costliest = sorted(priced, key=lambda pair: pair[0], reverse=True)
    return {
        "agents": [{"agent": agent, **asdict(spend)} for agent, spend in
                   sorted(_spend_by(records, lambda record: record.agent).items())],
        "tickets": [{"ticket": ticket, **asdict(spend)} for _, ticket, spend in
                    tickets[:TICKET_LIMIT]],
        "tickets_with_cost": len(tickets),
        "total": asdict(Spend.of([record.account for record in records])),
        "most_expensive": [_costly_run(record) for _, record in costliest[:COSTLIEST_LIMIT]],
    }


def cost_text(cost: float | None) -> str:
    """``$0.0217``; "-" for None."""
    return "-" if cost is None else f"${cost:.4f}"


def tokens_text(count: int | None) -> str:
    """``12,345``; "-" for None."""
    return "-" if count is None else f"{count:,}"


SPEND_HEADERS = ("runs", "with cost", "cost", "tokens in", "tokens out")


def spend_row(name: str, spend: dict[str, Any]) -> list[str]:
    """A group's spending as the cells of a table row, after its ``name``."""
    return [name, str(spend["runs"]), str(spend["runs_with_cost"]), cost_text(spend["cost_usd"]),
            tokens_text(spend["tokens_in"]), tokens_text(spend["tokens_out"])]


def total_line(total: dict[str, Any]) -> str:
    """One sentence: what all the runs cost and the tokens they used."""
    cost = (f"{cost_text(total['cost_usd'])} in all, from the {total['runs_with_cost']} of "
            f"{total['runs']} runs that reported a cost" if total["runs_with_cost"]
            else f"None of the {total['runs']} runs reported a cost")
    tokens = ", ".join(f"{total[name]:,} {label}" for name, label in zip(
        TOKENS, ("in", "out", "read from cache", "written to cache"), strict=True)
        if total[name] is not None)
    return cost + (f"; tokens: {tokens}." if tokens else ".")


def render_costs(costs: dict[str, Any]) -> list[str]:
    """The Markdown lines of the cost part: per agent with the total, per ticket, and the most
    expensive runs."""
    agents = [spend_row(agent["agent"], agent) for agent in costs["agents"]]
    agents.append(spend_row("**all**", costs["total"]))
    lines = ["", "## Cost", "", total_line(costs["total"]), "",
             markdown_table(["agent", *SPEND_HEADERS], agents), "",
             "*cost* and the tokens add up what the runs reported of themselves (\"-\": none "
             "did); a run tried again counts once per attempt."]
    if costs["tickets"]:
        tickets = [spend_row(cell(ticket["ticket"]), ticket) for ticket in costs["tickets"]]
        lines += ["", "### Per ticket", "", markdown_table(["ticket", *SPEND_HEADERS], tickets)]
        if costs["tickets_with_cost"] > len(tickets):
            lines += ["", f"...and {costs['tickets_with_cost'] - len(tickets)} cheaper tickets."]
    lines += ["", "## Most expensive runs", ""]
    if not costs["most_expensive"]:
        return [*lines, "None reported a cost."]
    runs = [[code(run["run_id"]), run["agent"], cell(run["ticket"]), cost_text(run["cost_usd"]),
             "-" if run["turns"] is None else str(run["turns"]),
             duration_text(run["duration_s"], tenths=True)] for run in costs["most_expensive"]]
    return [*lines, markdown_table(["run", "agent", "ticket", "cost", "turns", "duration"], runs)]
