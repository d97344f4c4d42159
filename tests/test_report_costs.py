"""The report's cost part: what the runs reported they spent, per agent, per ticket, in total,
and the most expensive runs; from hand-written history lines, and once through the real
``starforge report``."""

from __future__ import annotations

import json
import time
import typing
from typing import Any

import pytest
from conftest import Project
from test_report import T0, line

from starforge_daemon.client.costs import (
    ACCOUNT,
    COSTLIEST_LIMIT,
    TICKET_LIMIT,
    cost_text,
    tokens_text,
)
from starforge_daemon.client.report import parse_history, render_json, render_markdown, summarize
from starforge_daemon.core.models import iso_utc
from starforge_daemon.store.results import ResultRecord, RunResult

SPEND_KEYS = {"runs", "runs_with_cost", "runs_without_cost", "cost_usd", "turns", "tokens_in",
              "tokens_out", "cache_read_tokens", "cache_creation_tokens"}


def costs_of(lines: list[str], now: float = T0 + 100_000, **options: Any) -> dict[str, Any]:
    records, skipped = parse_history(lines)
    assert skipped == 0
    return summarize(records, now=now, **options)["costs"]


def by_name(entries: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {entry[key]: entry for entry in entries}


def test_the_report_reads_the_account_the_writer_saves_with_its_types() -> None:
    written = typing.get_type_hints(RunResult)
    read = typing.get_type_hints(ResultRecord)
    for name in ACCOUNT:
        assert read[name] == written[name], name


def test_costs_and_tokens_add_up_per_agent_over_the_runs_that_reported_them() -> None:
    costs = costs_of([
        line("dev", 0, 10, cost_usd=0.1, turns=3, tokens_in=100, tokens_out=50,
             cache_read_tokens=1000, cache_creation_tokens=10),
        line("dev", 20, 10, cost_usd=0.2, turns=4, tokens_in=200, tokens_out=70),
        line("dev", 40, 10),  # a text agent, or a line older than the account
        line("qa", 60, 10, cost_usd=1, turns=1),  # an int serves as a float
        line("ops", 80, 10, cost_usd="a lot", tokens_in=True, turns=2.5),  # damaged: unknown
    ])
    agents = by_name(costs["agents"], "agent")
    assert agents["dev"] == {"agent": "dev", "runs": 3, "runs_with_cost": 2,
                             "runs_without_cost": 1, "cost_usd": 0.3, "turns": 7,
                             "tokens_in": 300, "tokens_out": 120, "cache_read_tokens": 1000,
                             "cache_creation_tokens": 10}
    assert (agents["qa"]["cost_usd"], agents["qa"]["tokens_in"]) == (1.0, None)
    assert agents["ops"] == {"agent": "ops", **dict.fromkeys(SPEND_KEYS), "runs": 1,
                             "runs_with_cost": 0, "runs_without_cost": 1}
    total = costs["total"]
    assert (total["runs"], total["runs_with_cost"], total["runs_without_cost"]) == (5, 3, 2)
    assert (total["cost_usd"], total["turns"], total["tokens_in"]) == (1.3, 8, 300)


def test_a_retried_attempt_is_a_run_and_its_cost_counts_once() -> None:
    first = json.loads(line("dev", 0, 30, "failed", ticket="T-7", exit_code=1, cost_usd=0.05,
                            turns=2, retry_at=iso_utc(T0 + 60)))
    second = json.loads(line("dev", 60, 40, ticket="T-7", cost_usd=0.25, turns=6))
    # the archived line carries every attempt again: they are not counted a second time
    second["attempts"] = [dict(first), dict(second)]
    costs = costs_of([json.dumps(first), json.dumps(second)])
    assert (costs["total"]["runs"], costs["total"]["cost_usd"]) == (2, 0.3)
    ticket = costs["tickets"][0]
    assert (ticket["ticket"], ticket["runs"], ticket["cost_usd"], ticket["turns"]) == (
        "T-7", 2, 0.3, 8)
    assert [run["outcome"] for run in costs["most_expensive"]] == ["succeeded", "failed"]


def test_tickets_with_a_cost_costliest_first_and_capped() -> None:
    count = TICKET_LIMIT + 2
    lines = [line("dev", n * 10, 5, ticket=f"T-{n:02d}", cost_usd=0.01 * (n + 1))
             for n in range(count)]
    lines += [line("qa", 500, 5, ticket="T-00", cost_usd=0.5),  # T-00 adds up to the most
              line("qa", 510, 5, ticket="T-99"),  # no cost: not a ticket with a cost
              line("qa", 520, 5, cost_usd=9.0),  # no ticket
              line("ops", 530, 5, ticket="B", cost_usd=0.12),  # as costly as T-11: by name
              line("ops", 540, 5, ticket=7, cost_usd=0.001)]  # an older file's numeric ticket
    costs = costs_of(lines)
    tickets = [(entry["ticket"], entry["cost_usd"]) for entry in costs["tickets"]]
    assert tickets[:4] == [("T-00", 0.51), ("B", 0.12), ("T-11", 0.12), ("T-10", 0.11)]
    assert len(tickets) == TICKET_LIMIT and costs["tickets_with_cost"] == count + 2
    assert {"T-99", "7"}.isdisjoint(ticket for ticket, _ in tickets)
    text = render_markdown(summarize(parse_history(lines)[0], now=T0 + 100_000))
    assert "...and 4 cheaper tickets." in text.split("### Per ticket")[1]


def test_the_most_expensive_runs_are_the_top_five_by_cost() -> None:
    prices = [0.3, 0.05, 1.2, 0.0, 0.7, 0.05, 2.5, 0.9]
    lines = [line("dev" if n % 2 else "qa", n * 100, 10 + n, ticket=f"T-{n}", cost_usd=price,
                  turns=n, model="claude-sonnet-4-5", session_id=f"s-{n}")
             for n, price in enumerate(prices)]
    lines.append(line("dev", 900, 5000))  # the slowest, but without a cost
    records, _ = parse_history(lines)
    costs = summarize(records, now=T0 + 100_000)["costs"]
    top = costs["most_expensive"]
    assert len(top) == COSTLIEST_LIMIT
    assert [run["cost_usd"] for run in top] == [2.5, 1.2, 0.9, 0.7, 0.3]
    assert top[0] == {"run_id": records[6].run_id, "agent": "qa", "ticket": "T-6",
                      "outcome": "succeeded", "duration_s": 16, "session_id": "s-6",
                      "model": "claude-sonnet-4-5", "turns": 6, "tokens_in": None,
                      "tokens_out": None, "cache_read_tokens": None,
                      "cache_creation_tokens": None, "cost_usd": 2.5}


def test_the_time_window_applies_to_the_costs() -> None:
    lines = [line("dev", 0, 10, ticket="old", cost_usd=5.0),
             line("dev", 3000, 10, ticket="new", cost_usd=0.25)]
    costs = costs_of(lines, now=T0 + 3600, since_s=600, since_text="10m")
    assert costs["total"]["cost_usd"] == 0.25
    assert [entry["ticket"] for entry in costs["tickets"]] == ["new"]
    assert [run["cost_usd"] for run in costs["most_expensive"]] == [0.25]


def test_the_json_has_the_costs_under_their_keys() -> None:
    records, _ = parse_history([line("dev", 0, 10, ticket="T-1", cost_usd=0.0217, turns=3),
                                line("qa", 20, 10)])
    doc = json.loads(render_json(summarize(records, now=T0 + 100)))
    costs = doc["costs"]
    assert set(costs) == {"agents", "tickets", "tickets_with_cost", "total", "most_expensive"}
    assert set(costs["total"]) == SPEND_KEYS
    assert all(set(agent) == {"agent", *SPEND_KEYS} for agent in costs["agents"])
    assert set(costs["tickets"][0]) == {"ticket", *SPEND_KEYS}
    assert set(costs["most_expensive"][0]) == {"run_id", "agent", "ticket", "outcome",
                                               "duration_s", *ACCOUNT}


def table_rows(text: str) -> dict[str, list[str]]:
    return {row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:-1]]
            for row in text.splitlines() if row.startswith("| ")}


def test_markdown_shows_the_costs_per_agent_ticket_and_run() -> None:
    records, _ = parse_history([
        line("dev", 0, 75, ticket="T-1", cost_usd=0.0217, turns=3, tokens_in=1200,
             tokens_out=34_567, cache_read_tokens=1_000_000),
        line("qa", 100, 10),
    ])
    text = render_markdown(summarize(records, now=T0 + 200))
    cost = text.split("## Cost")[1].split("### Per ticket")[0]
    assert ("$0.0217 in all, from the 1 of 2 runs that reported a cost; tokens: 1,200 in, "
            "34,567 out, 1,000,000 read from cache.") in cost
    rows = table_rows(cost)
    assert rows["agent"] == ["runs", "with cost", "cost", "tokens in", "tokens out"]
    assert rows["dev"] == ["1", "1", "$0.0217", "1,200", "34,567"]
    assert rows["qa"] == ["1", "0", "-", "-", "-"]
    assert rows["**all**"] == ["2", "1", "$0.0217", "1,200", "34,567"]
    assert table_rows(text.split("### Per ticket")[1].split("##")[0])["T-1"][2] == "$0.0217"
    costliest = table_rows(text.split("## Most expensive runs")[1].split("## Slowest")[0])
    assert costliest["run"] == ["agent", "ticket", "cost", "turns", "duration"]
    assert costliest[f"`{records[0].run_id}`"] == ["dev", "T-1", "$0.0217", "3", "1m15s"]


def test_markdown_says_when_no_run_reported_a_cost() -> None:
    records, _ = parse_history([line("dev", 0, 10, ticket="T-1"), line("qa", 20, 10)])
    text = render_markdown(summarize(records, now=T0 + 100))
    assert "None of the 2 runs reported a cost." in text
    assert "### Per ticket" not in text
    assert "## Most expensive runs\n\nNone reported a cost." in text


@pytest.mark.parametrize(("cost", "text"), [(None, "-"), (0.0, "$0.0000"), (0.0217, "$0.0217"),
                                            (12.34567, "$12.3457")])
def test_cost_text(cost: float | None, text: str) -> None:
    assert cost_text(cost) == text


@pytest.mark.parametrize(("count", "text"), [(None, "-"), (0, "0"), (1_234_567, "1,234,567")])
def test_tokens_text(count: int | None, text: str) -> None:
    assert tokens_text(count) == text


def written_line(agent: str, ended: float, duration: float, attempt: int = 1,
                 **account: Any) -> str:
    """A history line as the daemon writes it: a :class:`RunResult` and the history's keys."""
    run_id = f"{agent}-{int(ended)}-{attempt:06x}"
    result = RunResult(trigger=f"{agent}.trigger", id=None, outcome=account.pop("outcome", "succeeded"),
                       reason=None, exit_code=0, run_id=run_id, agent=agent, pool=None,
                       attempt=attempt, ticket=account.pop("ticket", None),
                       action="implement_ticket", from_agent=None, pid=4242,
                       started_at=iso_utc(ended - duration, precise=True),
                       ended_at=iso_utc(ended, precise=True), duration_s=duration,
                       log=f"/repo/.claude/logs/{run_id}.log", **account)
    extra = ({"retry_at": iso_utc(ended + 5, precise=True)} if result.outcome == "failed"
             else {"archived_as": f"/repo/.claude/triggers/processed/{agent}.trigger"})
    return json.dumps({**result.to_dict(), **extra})


def test_the_report_command_shows_what_the_runs_cost(project: Project) -> None:
    now = time.time()
    claude = {"model": "claude-sonnet-4-5", "session_id": "0b7f", "cache_read_tokens": 90_000,
              "cache_creation_tokens": 4_000}
    lines = [
        written_line("developer", now - 7200, 300, ticket="52", cost_usd=9.99, turns=50,
                     tokens_in=1, tokens_out=1, **claude),  # outside --since 1h
        written_line("developer", now - 600, 95, outcome="failed", ticket="53",
                     cost_usd=0.0917, turns=9, tokens_in=800, tokens_out=4100, **claude),
        written_line("developer", now - 300, 120, attempt=2, ticket="53", cost_usd=0.1502,
                     turns=12, tokens_in=1200, tokens_out=6000, **claude),
        written_line("qa-engineer", now - 200, 61.5, ticket="52", cost_usd=0.0217, turns=4,
                     tokens_in=300, tokens_out=900, **claude),
        written_line("linter", now - 100, 3.2),  # a text agent: no account
    ]
    project.paths.history_file.parent.mkdir(parents=True, exist_ok=True)
    project.paths.history_file.write_text("\n".join(lines) + "\n")
    costs = json.loads(project.cli("report", "--since", "1h", "--format", "json").stdout)["costs"]
    assert costs["total"] == {"runs": 4, "runs_with_cost": 3, "runs_without_cost": 1,
                              "cost_usd": 0.2636, "turns": 25, "tokens_in": 2300,
                              "tokens_out": 11_000, "cache_read_tokens": 270_000,
                              "cache_creation_tokens": 12_000}
    assert [(ticket["ticket"], ticket["cost_usd"]) for ticket in costs["tickets"]] == [
        ("53", 0.2419), ("52", 0.0217)]
    assert [run["cost_usd"] for run in costs["most_expensive"]] == [0.1502, 0.0917, 0.0217]
    assert costs["most_expensive"][0]["model"] == "claude-sonnet-4-5"
    text = project.cli("report", "--since", "1h").stdout
    assert "$0.2636 in all, from the 3 of 4 runs that reported a cost" in text
    assert table_rows(text.split("## Cost")[1].split("### Per ticket")[0])["developer"] == [
        "2", "2", "$0.2419", "2,000", "10,100"]
    costliest = text.split("## Most expensive runs")[1].split("## Slowest")[0]
    assert "| developer " in costliest and "$0.1502" in costliest and "2m00s" in costliest
    assert "$9.99" not in text
