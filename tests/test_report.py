"""The report's numbers, from hand-written history records: no daemon, no clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from starforge_daemon.client.report import (
    FAILED_LIMIT,
    bytes_text,
    parse_history,
    percentile,
    render_json,
    render_markdown,
    summarize,
)
from starforge_daemon.core.durations import parse_duration
from starforge_daemon.core.models import iso_utc

T0 = 1_761_368_400.0  # 2025-10-25T05:00:00Z


def line(agent: str, start: float, duration: float, outcome: str = "succeeded",
         **extra: Any) -> str:
    run_id = f"{agent}-{int(T0 + start)}-{abs(hash((agent, start))) % 0xFFFFFF:06x}"
    record = {"run_id": run_id, "agent": agent, "ticket": extra.pop("ticket", None),
              "action": "implement_ticket", "from_agent": None, "pid": 4242,
              "started_at": iso_utc(T0 + start), "ended_at": iso_utc(T0 + start + duration),
              "duration_s": duration, "log": f"/repo/.claude/logs/{run_id}.log",
              "trigger": "x.trigger", "archived_as": "/repo/x", "outcome": outcome,
              "reason": extra.pop("reason", "exited with status 0"),
              "exit_code": extra.pop("exit_code", 0), **extra}
    return json.dumps(record)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600),
    ("1.5h", 5400), (" 10m ", 600),
])
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "-5m", "0h", "1h30m", "ten minutes"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="like 90s, 30m, 24h or 7d"):
        parse_duration(text)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3.0


def test_torn_and_foreign_lines_are_skipped_and_counted() -> None:
    lines = [line("a", 0, 1), '{"run_id": "x"', "not json", "", '{"agent": "a"}',
             line("a", 10, 2).replace('"succeeded"', '"exploded"'),
             line("a", 20, 3).replace("Z", "")]  # no timezone: refused, not guessed
    records, skipped = parse_history(lines)
    assert [record.duration_s for record in records] == [1]
    assert skipped == 5
    unrun = ('{"trigger": "bad.trigger", "id": "bad", "outcome": "invalid", "reason": "empty file",'
             ' "exit_code": null}')
    assert parse_history([*lines, unrun]) == (records, 5), "no run, and no unreadable line"


def test_counts_median_p95_and_throughput_per_agent() -> None:
    lines = [line("dev", start, 10.0 * (n + 1)) for n, start in enumerate((0, 600, 1200, 1800))]
    lines += [line("qa", 100, 5, "failed", exit_code=3, reason="exited with status 3"),
              line("qa", 200, 7, "killed", exit_code=-15, reason="killed by daemon shutdown"),
              line("qa", 300, 9, "lost", exit_code=None, reason="lost"),
              line("qa", 3560, 40, "timed_out", exit_code=-15, reason="timed out after 40s")]
    records, _ = parse_history(lines)
    doc = summarize(records, now=T0 + 7200)
    agents = {entry["agent"]: entry for entry in doc["agents"]}
    assert doc["span_s"] == 3600  # first start T0, last end T0 + 3600: one hour
    assert agents["dev"] == {"agent": "dev", "runs": 4, "succeeded": 4, "failed": 0,
                             "timed_out": 0, "median_s": 25.0, "p95_s": 40.0,
                             "runs_per_hour": 4.0, "cpu_seconds": None,
                             "peak_memory_bytes": None}
    assert agents["qa"]["failed"] == 3 and agents["qa"]["timed_out"] == 1
    assert agents["qa"]["succeeded"] == 0 and agents["qa"]["runs_per_hour"] == 4.0
    assert doc["total"]["runs"] == 8 and doc["total"]["runs_per_hour"] == 8.0
    assert [run["duration_s"] for run in doc["slowest"]] == [40, 40, 30, 20, 10]
    assert [run["outcome"] for run in doc["failed"]] == ["timed_out", "lost", "killed", "failed"]
    assert doc["failed"][0]["log"].endswith(".log") and doc["failed_total"] == 4


def test_since_keeps_runs_that_ended_inside_the_window() -> None:
    records, _ = parse_history([line("a", 0, 10), line("a", 3000, 10), line("b", 3500, 50)])
    doc = summarize(records, now=T0 + 3600, since_s=600, since_text="10m")
    assert doc["total"]["runs"] == 2 and doc["since"] == "10m"
    assert doc["since_at"] == iso_utc(T0 + 3000)
    assert doc["first_started_at"] == iso_utc(T0 + 3000)
    assert summarize(records, now=T0 + 3600)["total"]["runs"] == 3


def test_a_single_instant_has_no_throughput_and_an_empty_history_says_so() -> None:
    records, _ = parse_history([line("a", 0, 0)])
    assert summarize(records, now=T0)["total"]["runs_per_hour"] is None
    empty = summarize([], now=T0, since_s=3600, since_text="1h", skipped=2)
    assert empty["total"]["runs"] == 0 and empty["agents"] == []
    text = render_markdown(empty)
    assert "No runs in `runs.jsonl` that ended in the last 1h" in text
    assert "2 unreadable line(s) skipped" in text
    assert "## Per agent" not in text


def test_markdown_has_the_tables_and_the_failed_runs_logs() -> None:
    records, _ = parse_history([
        line("dev", 0, 12.5, ticket=52),
        line("qa", 10, 95, "failed", ticket="T|1", exit_code=3, reason="exited with status 3"),
    ])
    text = render_markdown(summarize(records, now=T0 + 200, source=".claude/daemon/runs.jsonl"))
    assert text.startswith("# starforge report\n")
    assert "2 runs in `.claude/daemon/runs.jsonl`" in text
    rows = [row for row in text.splitlines() if row.startswith("| ")]
    assert any(row.split("|")[1].strip() == "dev" and "12.5s" in row for row in rows)
    assert any("**all**" in row and "1m35s" in row for row in rows)
    failed = text.split("## Failed runs")[1]
    assert "exited with status 3" in failed and "T\\|1" in failed
    assert f"`/repo/.claude/logs/{records[1].run_id}.log`" in failed


def test_failed_list_is_capped_newest_first_and_says_how_many_more() -> None:
    count = FAILED_LIMIT + 3
    records, _ = parse_history([line("qa", n * 10, 1, "failed", exit_code=1)
                                for n in range(count)])
    doc = summarize(records, now=T0 + 10_000)
    assert len(doc["failed"]) == FAILED_LIMIT and doc["failed_total"] == count
    assert doc["failed"][0]["ended_at"] == iso_utc(T0 + (count - 1) * 10 + 1)
    assert "...and 3 older ones" in render_markdown(doc)
    assert json.loads(render_json(doc)) == doc


def test_cpu_adds_up_and_peak_memory_is_the_highest_of_the_runs_that_recorded_them() -> None:
    mib = 1024 * 1024
    records, skipped = parse_history([
        line("dev", 0, 10, cpu_seconds=1.25, peak_memory_bytes=200 * mib),
        line("dev", 20, 10, cpu_seconds=2, peak_memory_bytes=312 * mib),
        line("dev", 40, 10),  # older line: no accounting
        line("dev", 60, 10, cpu_seconds=None, peak_memory_bytes=None),
        line("qa", 80, 10),
        line("ops", 100, 10, cpu_seconds="a lot", peak_memory_bytes=True),  # damaged: unknown
    ])
    assert skipped == 0 and len(records) == 6
    doc = summarize(records, now=T0 + 200)
    agents = {entry["agent"]: entry for entry in doc["agents"]}
    assert (agents["dev"]["cpu_seconds"], agents["dev"]["peak_memory_bytes"]) == (3.25, 312 * mib)
    for agent in ("qa", "ops"):
        assert (agents[agent]["cpu_seconds"], agents[agent]["peak_memory_bytes"]) == (None, None)
    assert (doc["total"]["cpu_seconds"], doc["total"]["peak_memory_bytes"]) == (3.25, 312 * mib)
    assert json.loads(render_json(doc))["agents"][0]["peak_memory_bytes"] == 312 * mib
    table = render_markdown(doc).split("## Per agent")[1].split("## Cost")[0]
    rows = {row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:-1]]
            for row in table.splitlines() if row.startswith("| ")}
    assert rows["agent"][-2:] == ["CPU", "peak memory"]
    assert rows["dev"][-2:] == ["3.2s", "312 MiB"]
    assert rows["qa"][-2:] == ["-", "-"] and rows["ops"][-2:] == ["-", "-"]
    assert rows["**all**"][-2:] == ["3.2s", "312 MiB"]


@pytest.mark.parametrize(("count", "text"), [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (312 * 1024 ** 2, "312 MiB"),
    (int(1.5 * 1024 ** 3), "1.5 GiB"), (3 * 1024 ** 5, "3072 TiB"),
])
def test_bytes_show_in_binary_units(count: int | None, text: str) -> None:
    assert bytes_text(count) == text
