"""Rows of figures with their baselines and targets, shown as one markdown table and saved as
JSON with the machine they were taken on."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure; ``ok`` is None when the row has no target (information only)."""

    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None


def info(metric: str, value: float | None, unit: str, baseline: float | None = None,
         baseline_label: str = "") -> Row:
    ratio = value / baseline if value is not None and baseline else None
    return Row(metric, value, unit, baseline, baseline_label, ratio)


def at_most(metric: str, value: float, unit: str, limit: float, baseline: float | None = None,
            baseline_label: str = "") -> Row:
    """A figure whose target is an upper bound on the figure itself."""
    row = info(metric, value, unit, baseline, baseline_label)
    row.target, row.ok = f"≤ {_number(limit, unit)}", _within(value, limit)
    return row


def ratio_at_most(metric: str, value: float, unit: str, baseline: float, baseline_label: str,
                  limit: float) -> Row:
    """A figure whose target is an upper bound on its ratio to the baseline."""
    row = info(metric, value, unit, baseline, baseline_label)
    row.target = f"≤ {limit:g}x {baseline_label}"
    row.ok = row.ratio is not None and _within(row.ratio, limit)
    return row


def _within(value: float, limit: float) -> bool:
    return not math.isnan(value) and value <= limit


@dataclass
class ScenarioResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


# -- markdown --------------------------------------------------------------------------------

def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:,.{digits}f} {unit}".rstrip()


def _result(row: Row) -> str:
    return "" if row.ok is None else "PASS" if row.ok else "**FAIL**"


def _cells(title: str, row: Row) -> list[str]:
    baseline = _number(row.baseline, row.unit) if row.baseline is not None else ""
    if baseline and row.baseline_label:
        baseline += f" ({row.baseline_label})"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
    return [title, row.metric, _number(row.value, row.unit), baseline, ratio, row.target,
            _result(row)]


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def markdown(results: list[ScenarioResult]) -> str:
    header = ["scenario", "metric", "measured", "baseline (same run)", "ratio", "target", "result"]
    lines = [_table_row(header), "|" + "---|" * len(header)]
    for result in results:
        if result.error:
            lines.append(_table_row([result.title, f"not measured: {result.error}", "", "", "",
                                     "", "**ERROR**"]))
        lines.extend(_table_row(_cells(result.title, row)) for row in result.rows)
    notes = [f"- {result.title}: {note}" for result in results for note in result.notes]
    return "\n".join([*lines, "", *notes] if notes else lines)


# -- JSON ------------------------------------------------------------------------------------

def _git_revision(folder: Path) -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain"],
                               capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


def _libpython_shared() -> bool:
    """Whether this interpreter runs from a shared ``libpython`` (pyenv's default build) rather
    than one linked into the executable (Debian's ``python3``): the daemon's CPU per trigger
    differs by about a sixth between the two on this machine (docs/BENCHMARKS.md)."""
    with open("/proc/self/maps") as maps:
        return any("/libpython" in line for line in maps)


def machine(checkout: Path) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": os.path.realpath(sys.executable),
        "libpython_shared": _libpython_shared(),
        "revision": _git_revision(checkout),
    }


def _plain(value: Any) -> Any:
    """NaN is not JSON: it becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def write_json(path: Path, run: dict[str, Any], results: list[ScenarioResult]) -> None:
    document = {**run, "scenarios": [asdict(result) for result in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(document), indent=2) + "\n")
