"""``starforge report --format html``: the page's structure from hand-written history lines (a
lane per agent, a bar per run, a colour per outcome, hostile text kept as text), one page drawn
by a real headless Chromium, and the real command on a real daemon's history."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import psutil
import pytest
from conftest import Project
from test_report import T0, line

from starforge_daemon.client.report import parse_history, summarize
from starforge_daemon.client.report_html import render_html
from starforge_daemon.client.timeline import OUTCOME_COLOURS, clock_text, tick_step, ticks
from starforge_daemon.core.models import OutcomeKind

HOSTILE_AGENT = "<script>alert('agent')</script>"
HOSTILE_REASON = '"><img src=x onerror=alert(1)> & </title><svg onload=alert(2)>'
HOSTILE_TICKET = "</rect><script>alert(3)</script>"
VOID_TAGS = {"meta", "br", "img", "link", "input"}  # elements without an end tag


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parents: list[Element] = field(repr=False)
    text: str = field(default="", repr=False)
    children: list[Element] = field(default_factory=list, repr=False)


class Page(HTMLParser):
    """The page's elements, each with its attributes, its text and its open ancestors."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs}, list(self.open))
        self.elements.append(element)
        if self.open:
            self.open[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1].tag == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data

    def find(self, tag: str, css_class: str | None = None) -> list[Element]:
        return [element for element in self.elements if element.tag == tag and (
            css_class is None or css_class in element.attrs.get("class", "").split())]


def page_of(lines: list[str], now: float = T0 + 100_000) -> tuple[Page, str]:
    records, skipped = parse_history(lines)
    assert skipped == 0
    markup = render_html(summarize(records, now=now), records)
    return Page(markup), markup


def history() -> list[str]:
    """Three agents: dev runs twice (one failure), qa overlaps dev's first run, ops times out."""
    return [line("dev", 0, 600, ticket="52", cost_usd=0.25),
            line("qa", 300, 600, ticket="52", cost_usd=0.5),
            line("dev", 900, 600, "failed", ticket="53", exit_code=1, reason="exited with status 1"),
            line("ops", 1200, 1800, "timed_out", exit_code=-15, reason="timed out after 1800s")]


def lanes(page: Page) -> dict[str, list[Element]]:
    """Each lane's agent and the run bars in it."""
    return {lane.attrs["data-agent"]: [bar for bar in lane.children if bar.tag == "rect"
                                       and "run" in bar.attrs.get("class", "")]
            for lane in page.find("g", "lane")}


def test_one_lane_per_agent_one_bar_per_run_coloured_by_outcome() -> None:
    page, _ = page_of(history())
    found = lanes(page)
    assert list(found) == ["dev", "ops", "qa"]
    assert [len(bars) for bars in found.values()] == [2, 1, 1]
    assert len(page.find("rect", "run")) == 4  # no bar outside a lane
    outcomes = {agent: [bar.attrs["data-outcome"] for bar in bars] for agent, bars in found.items()}
    assert outcomes == {"dev": ["succeeded", "failed"], "ops": ["timed_out"], "qa": ["succeeded"]}
    for bar in page.find("rect", "run"):
        assert bar.attrs["fill"] == OUTCOME_COLOURS[OutcomeKind(bar.attrs["data-outcome"])]
    legend = [item.text for item in page.find("ul", "legend")[0].children]
    assert legend == ["succeeded (2)", "failed (1)", "timed_out (1)"]


def test_a_bar_spans_its_run_on_one_time_scale() -> None:
    page, _ = page_of(history())
    found = lanes(page)
    dev_ok, dev_failed = ((float(bar.attrs["x"]), float(bar.attrs["width"])) for bar in found["dev"])
    qa = float(found["qa"][0].attrs["x"]), float(found["qa"][0].attrs["width"])
    ops = float(found["ops"][0].attrs["x"]), float(found["ops"][0].attrs["width"])
    assert dev_ok[1] == pytest.approx(qa[1], abs=0.02) == pytest.approx(ops[1] / 3, abs=0.02)
    assert qa[0] == pytest.approx(dev_ok[0] + dev_ok[1] / 2, abs=0.02)  # in parallel, half-way
    assert dev_failed[0] - (dev_ok[0] + dev_ok[1]) == pytest.approx(dev_ok[1] / 2, abs=0.02)  # idle
    assert ops[0] + ops[1] == pytest.approx(dev_ok[0] + dev_ok[1] * 5, abs=0.02)  # the last end


def test_a_bar_hover_title_says_run_ticket_outcome_duration_and_cost() -> None:
    page, _ = page_of(history())
    titles = [bar.children[0].text for bar in lanes(page)["dev"]]
    run_id = history()[0].split('"run_id": "')[1].split('"')[0]
    assert titles[0] == f"{run_id}\nticket 52 · succeeded · 10m00s · cost $0.2500"
    assert titles[1].endswith("ticket 53 · failed · 10m00s · cost -\nexited with status 1")


def test_every_outcome_has_a_colour_of_its_own() -> None:
    assert set(OUTCOME_COLOURS) == set(OutcomeKind)
    assert len(set(OUTCOME_COLOURS.values())) == len(OutcomeKind)


def test_hostile_history_text_stays_text() -> None:
    lines = [line(HOSTILE_AGENT, 0, 60, "failed", ticket=HOSTILE_TICKET, exit_code=1,
                  reason=HOSTILE_REASON, log=f"/x/{HOSTILE_REASON}.log"),
             line("dev", 30, 60, ticket=HOSTILE_TICKET, cost_usd=0.1)]
    page, markup = page_of(lines)
    assert not page.find("script") and not page.find("img")
    assert len(page.find("svg")) == 3  # the timeline and the two charts: none from the text
    for element in page.elements:
        assert not [name for name in element.attrs if name.startswith("on")], element
        assert not {"src", "href"} & set(element.attrs), element
    assert list(lanes(page)) == [HOSTILE_AGENT, "dev"]
    [hostile_bar] = lanes(page)[HOSTILE_AGENT]
    assert hostile_bar.children[0].text.endswith(f"ticket {HOSTILE_TICKET} · failed · 1m00s · "
                                                 f"cost -\n{HOSTILE_REASON}")
    failed_rows = page.find("table")[-1].children[1].children
    assert [cell.text for cell in failed_rows[0].children][5] == HOSTILE_REASON
    assert "&lt;script&gt;alert(&#x27;agent&#x27;)&lt;/script&gt;" in markup
    [policy] = [meta for meta in page.find("meta")
                if meta.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert policy.attrs["content"] == "default-src 'none'; style-src 'unsafe-inline'"


def test_an_empty_history_says_so_without_pictures() -> None:
    page, _ = page_of([])
    assert "No runs in" in page.find("p")[0].text and not page.find("svg")


@pytest.mark.parametrize(("span", "step", "label"), [
    (0.5, 0.1, "05:00:00.1"), (45, 5, "05:00:05"), (700, 120, "05:02"),
    (3 * 86400, 43200, "10-26 00:00"), (30 * 86400, 7 * 86400, "11-06"),
])
def test_axis_ticks_are_round_and_few(span: float, step: float, label: str) -> None:
    assert tick_step(span) == step
    moments = ticks(T0, T0 + span)
    assert 2 <= len(moments) <= 11 and all(T0 <= moment <= T0 + span for moment in moments)
    assert clock_text(moments[1], step, span) == label


# -- a real browser ------------------------------------------------------------------------


def require_chromium() -> str:
    """The path of Chromium; skip the test when it is missing (fail under
    ``STARFORGE_REQUIRE_CHROMIUM=1``, as in CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("STARFORGE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + "; STARFORGE_REQUIRE_CHROMIUM=1 demands it", pytrace=False)
        pytest.skip(message)
    return path


def screenshot(page: Path, png: Path) -> None:
    """Draw ``page`` in a headless Chromium, 1200x800, into ``png``; leave no process behind."""
    profile = png.parent / "chromium-profile"
    command = [require_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,800",
               page.as_uri()]
    try:
        subprocess.run(command, capture_output=True, timeout=60, check=True,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        leftovers = [proc for proc in psutil.process_iter(["cmdline"])
                     if f"--user-data-dir={profile}" in (proc.info["cmdline"] or [])]
        for proc in leftovers:
            proc.kill()
        psutil.wait_procs(leftovers, timeout=5)


def read_png(path: Path) -> tuple[int, list[bytes]]:
    """An 8-bit RGB or RGBA PNG's bytes per pixel and its rows of pixels, unfiltered."""
    data, position, chunks = path.read_bytes(), 8, b""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    while position < len(data):
        size, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + size]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6) and body[12] == 0, "not interlaced RGB(A)"
        elif kind == b"IDAT":
            chunks += body
        position += 12 + size
    raw, pixel = zlib.decompress(chunks), 3 if colour == 2 else 4
    stride, rows, previous = width * pixel, [], bytearray(width * pixel)
    for y in range(height):
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - pixel] if i >= pixel else 0
            up, corner = previous[i], previous[i - pixel] if i >= pixel else 0
            if kind == 1:
                row[i] = (row[i] + left) & 255
            elif kind == 2:
                row[i] = (row[i] + up) & 255
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))[2]
                row[i] = (row[i] + near) & 255
        rows.append(bytes(row))
        previous = row
    return pixel, rows


def test_chromium_draws_the_timeline(tmp_path: Path) -> None:
    _, markup = page_of(history())
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(markup, encoding="utf-8")
    screenshot(page, png)
    pixel, rows = read_png(png)
    assert (len(rows), len(rows[0]) // pixel) == (800, 1200)
    colours: dict[bytes, int] = {}
    for row in rows[150:500]:  # the timeline, below the title and the legend
        for x in range(150 * pixel, 1150 * pixel, pixel):
            colour = row[x:x + 3]
            colours[colour] = colours.get(colour, 0) + 1
    painted = sum(count for colour, count in colours.items() if min(colour) < 200)
    assert painted > 10_000, f"only {painted} dark pixels: is the page blank?"
    for outcome in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.TIMED_OUT):
        rgb = bytes.fromhex(OUTCOME_COLOURS[outcome][1:])
        assert colours.get(rgb, 0) > 1_000, f"no {outcome} bar drawn ({colours.get(rgb)} px)"


# -- the real command ----------------------------------------------------------------------


def test_the_report_command_writes_a_page_from_a_real_history(project: Project,
                                                              tmp_path: Path) -> None:
    project.trigger("ok1.trigger", "agent-a", ticket=1)
    project.trigger("ok2.trigger", "agent-a", ticket=2)
    project.trigger("bad.trigger", "agent-b", ticket=3, context={"exit": 3})
    project.start(PARALLEL_DAEMON="true")
    project.wait_archived(3)
    output = tmp_path / "report.html"
    result = project.cli("report", "--format", "html", "--output", str(output))
    assert result.stdout == ""  # the page goes to its file, not over the terminal
    page = Page(output.read_text(encoding="utf-8"))
    found = lanes(page)
    assert {agent: [bar.attrs["data-outcome"] for bar in bars] for agent, bars in found.items()} \
        == {"agent-a": ["succeeded", "succeeded"], "agent-b": ["failed"]}
    bad = project.result("bad.trigger")
    assert found["agent-b"][0].children[0].text.startswith(f"{bad['run_id']}\nticket 3 · failed")
    assert "3 runs in .claude/daemon/runs.jsonl" in page.find("p")[0].text
    printed = project.cli("report", "--format", "html", "--since", "1h").stdout
    assert Page(printed).find("g", "lane") and printed.startswith("<!DOCTYPE html>")
