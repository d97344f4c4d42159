"""``starforge top``: the Textual dashboard, driven headless by Textual's pilot against a real
daemon (and without one)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Project
from textual.pilot import Pilot
from textual.widgets import DataTable, Log

from starforge_daemon.cli.dashboard_app import Dashboard
from starforge_daemon.cli.dashboard_screens import RunLog
from starforge_daemon.client.dashboard_data import DashboardFeed
from starforge_daemon.client.tail import FileTail
from starforge_daemon.store.settings import load_settings


def dashboard(project: Project) -> Dashboard:
    return Dashboard(DashboardFeed(project.paths, load_settings(project.paths)))


def rows(app: Dashboard, table: str) -> list[list[str]]:
    widget = app.query_one(f"#{table}", DataTable)
    return [[str(cell) for cell in widget.get_row_at(index)] for index in range(widget.row_count)]


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], what: str,
                timeout: float = 15.0) -> Any:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        await pilot.pause(0.05)
    return value


def queue_notes(project: Project) -> dict[str, str]:
    listing = json.loads(project.cli("queue", "list", "--json").stdout)
    return {item["name"]: item["note"] for item in listing["pending"]}


def test_the_dashboard_shows_a_run_and_steers_the_daemon(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true")
    project.trigger("first.trigger", "agent-a", ticket=52, context={"gate": "GATE", "output": 4096})
    project.trigger("second.trigger", "agent-a", ticket=53)

    async def drive() -> None:
        app = dashboard(project)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: [row[:3] for row in rows(app, "slots")]
                        == [["agent-a", "busy", "52"]], "the run in the slots pane")
            await until(pilot, lambda: rows(app, "queue") == [["1", "agent-a", "53",
                                                                "is busy"]],
                        "the second trigger waiting for agent-a")
            assert "daemon running" in str(app.query_one("#daemon").render())
            await until(pilot, lambda: any("SPAWNED" in line for line in
                                           app.query_one("#events", Log).lines),
                        "the run's start in the events pane")

            await pilot.press("p")  # the slots pane has the focus: pause agent-a
            await until(pilot, lambda: rows(app, "slots")[0][1] == "busy, paused",
                        "agent-a shown paused")
            assert json.loads(project.paths.paused_file.read_text())["agents"] == ["agent-a"]
            assert queue_notes(project) == {"second.trigger": "agent-a is paused"}
            await until(pilot, lambda: rows(app, "queue")[0][3] == "is paused",
                        "the queue pane saying why the trigger waits now")

            await pilot.press("l")  # its log, followed: the agent's last line comes
            log = await until(pilot, lambda: isinstance(app.screen, RunLog) and app.screen,
                              "the log screen")
            await until(pilot, lambda: "THE END" in log.query_one(Log).lines,
                        "the run's output in the log screen")
            await pilot.press("escape")

            await pilot.press("tab", "c", "y")  # the queue pane: cancel the waiting trigger
            await until(pilot, lambda: "second.trigger" in project.archived("failed"),
                        "the cancelled trigger in failed/")
            assert project.result("second.trigger")["outcome"] == "cancelled"
            await until(pilot, lambda: rows(app, "queue") == [], "an empty queue pane")

            await pilot.press("shift+tab", "s", "n")  # asked, and said no: it runs on
            await pilot.pause()
            assert not project.all_archived().get("first.trigger")
            await pilot.press("s", "y")
            await until(pilot, lambda: "first.trigger" in project.archived("failed"),
                        "the stopped run's trigger in failed/")
            await until(pilot, lambda: rows(app, "runs") and rows(app, "runs")[0][1:4]
                        == ["agent-a", "52", "killed"], "the stopped run in the runs pane")
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(drive())


def test_without_a_daemon_the_dashboard_says_so_and_pauses_through_the_file(
        project: Project) -> None:
    project.write_env()
    project.trigger("waiting.trigger", "agent-b")

    async def drive() -> None:
        app = dashboard(project)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rows(app, "queue"), "the waiting trigger")
            assert rows(app, "queue") == [["1", "agent-b", "-", "starts next"]]
            assert str(app.query_one("#daemon").render()) == "daemon not running (starforge start)"
            await pilot.press("P")
            await until(pilot, lambda: "paused: all" in str(app.query_one("#daemon").render()),
                        "the pause of all agents")
            assert rows(app, "queue")[0][3] == "everything is paused"
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(drive())
    assert json.loads(project.paths.paused_file.read_text())["all"] is True


def test_without_textual_top_says_how_to_install_it(project: Project) -> None:
    hide_textual = ("import sys; sys.modules['textual'] = None; "
                    "from starforge_daemon.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", hide_textual, "--project-dir",
                             str(project.root), "top"], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL, env=os.environ.copy())
    assert result.returncode == 1
    assert result.stderr == ("Error: the dashboard needs Textual: pip install "
                             "'starforge-daemon[dashboard]' (or pip install textual)\n")


def test_a_file_tail_gives_whole_new_lines_through_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    path.write_bytes(b"".join(b"line %d\n" % number for number in range(10)))
    tail = FileTail(path, lines=3)
    assert tail.read() == b"line 7\nline 8\nline 9\n"
    with path.open("ab") as file:
        file.write(b"line 10\nhalf")
    assert tail.read() == b"line 10\n"
    assert tail.read() == b""
    with path.open("ab") as file:
        file.write(b" done\n")
    assert tail.read() == b"half done\n"
    rotated = tmp_path / "new.log"
    rotated.write_bytes(b"fresh\n")
    os.replace(rotated, path)
    assert tail.read() == b"fresh\n"
    path.write_bytes(b"cut\n")  # cut back (as LOG_MAX_BYTES cuts a run log)
    assert tail.read() == b"cut\n"
