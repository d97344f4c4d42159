"""``starforge top``: the Textual app. It only shows the snapshots of
:mod:`starforge_daemon.client.dashboard_data` and hands keys to :mod:`client.steer`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Log, Static

from starforge_daemon.cli.dashboard_screens import Confirm, RunLog
from starforge_daemon.client import steer
from starforge_daemon.client.dashboard_data import DashboardFeed, Snapshot
from starforge_daemon.client.listing import Pending
from starforge_daemon.client.runlogs import LogNotFound, run_log
from starforge_daemon.core.durations import duration_text
from starforge_daemon.store.control_socket import ControlError

REFRESH_SECONDS = 1.0
EVENT_LINES = 500
QUEUE_ROWS = 200  # the next ones; the pane's title counts them all
COLUMNS = {
    "slots": ("AGENT", "STATE", "TICKET", "ELAPSED", "TOKENS", "COST", "DOING / LAST LINE"),
    "queue": ("#", "AGENT", "TICKET", "WHY"),
    "runs": ("ENDED", "AGENT", "TICKET", "OUTCOME", "TOOK"),
}
Row = tuple[str, tuple[Any, ...]]  # a row's key and its cells
STEERING = {"pause", "pause_all", "stop", "cancel", "open_log"}


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def _slot_rows(snapshot: Snapshot) -> list[Row]:
    return [(slot.agent, (slot.agent, slot.state, slot.ticket or "-",
                          duration_text(slot.elapsed_s), slot.tokens or "-",
                          _cost(slot.cost_usd), slot.doing[:80]))
            for slot in snapshot.slots]


def _why(item: Pending) -> str:
    """Why a trigger waits, short: its agent is in the column before (``is busy``)."""
    if item.state == "next":
        return "starts next"
    return (item.note or item.state).removeprefix(f"{item.agent} ")


def _queue_rows(snapshot: Snapshot) -> list[Row]:
    return [(item.name, (item.position, item.agent, item.ticket or "-", _why(item)))
            for item in snapshot.pending[:QUEUE_ROWS]]


def _run_rows(snapshot: Snapshot) -> list[Row]:
    rows: dict[str, tuple[Any, ...]] = {}
    for record in snapshot.finished:
        if record.run_id and record.run_id not in rows:
            rows[record.run_id] = ((record.ended_at or "")[11:16] or "-", record.agent or "-",
                                   record.ticket or "-", record.outcome or "-",
                                   duration_text(record.duration_s))
    return list(rows.items())


class Dashboard(App[None]):
    """Slots, queue, finished runs and the event log of one project, refreshed every second."""

    TITLE = "starforge top"
    CSS = """
    #daemon { height: 1; background: $boost; }
    #daemon.down { background: $error; }
    .pane { height: 1fr; border-top: solid $primary; }
    .pane:focus-within { border-top: solid $accent; }
    #middle { height: 1fr; }
    #queue-pane { width: 4fr; }
    #runs-pane { width: 5fr; }
    #events-pane { height: 7; }
    DataTable { height: 1fr; overflow-x: hidden; }
    #events { overflow-x: hidden; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "pause/resume"),
        Binding("P", "pause_all", "all", show=False),
        Binding("s", "stop", "stop run"),
        Binding("c", "cancel", "cancel trigger"),
        Binding("l", "open_log", "log"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, feed: DashboardFeed) -> None:
        super().__init__()
        self.feed = feed
        self.snapshot: Snapshot | None = None
        self._keys: dict[str, list[str]] = {name: [] for name in COLUMNS}
        self._rows: dict[str, list[Row]] = {name: [] for name in COLUMNS}
        self._refreshing = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The keys that act on the panes work only while the panes are shown."""
        return action not in STEERING or len(self.screen_stack) == 1

    def compose(self) -> ComposeResult:
        yield Static("reading the daemon's files...", id="daemon", markup=False)
        with Vertical(classes="pane", id="slots-pane") as pane:
            pane.border_title = "slots"
            yield DataTable(id="slots", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="middle"):
            with Vertical(classes="pane", id="queue-pane") as pane:
                pane.border_title = "queue"
                yield DataTable(id="queue", cursor_type="row")
            with Vertical(classes="pane", id="runs-pane") as pane:
                pane.border_title = "finished runs"
                yield DataTable(id="runs", cursor_type="row")
        with Vertical(classes="pane", id="events-pane") as pane:
            pane.border_title = "events (daemon.log)"
            yield Log(max_lines=EVENT_LINES, id="events")
        yield Footer()

    async def on_mount(self) -> None:
        for name, labels in COLUMNS.items():
            self.query_one(f"#{name}", DataTable).add_columns(*labels)
        await self.refresh_snapshot()
        self.set_interval(REFRESH_SECONDS, self.refresh_snapshot)

    async def refresh_snapshot(self) -> None:
        """Take a snapshot off the event loop (the queue may be long), then show it."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            snapshot = await asyncio.to_thread(self.feed.snapshot)
        except OSError as error:  # no permission to read the daemon's files, say
            self.query_one("#daemon", Static).update(f"cannot read the daemon's files: {error}")
            return
        finally:
            self._refreshing = False
        self.show(snapshot)

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        header = self.query_one("#daemon", Static)
        header.update(snapshot.daemon)
        header.set_class(not snapshot.running, "down")
        self._fill("slots", _slot_rows(snapshot))
        self._fill("queue", _queue_rows(snapshot))
        self._fill("runs", _run_rows(snapshot))
        queue_title = f"queue: {len(snapshot.pending)} waiting"
        if snapshot.not_queued:
            queue_title += f", {snapshot.not_queued} not queued"
        self.query_one("#queue-pane").border_title = snapshot.queue_problem or queue_title
        if snapshot.new_events:
            self.query_one("#events", Log).write_lines(snapshot.new_events)

    def _fill(self, name: str, rows: list[Row]) -> None:
        """Replace a table's rows, keeping the cursor on the row it was on."""
        table = self.query_one(f"#{name}", DataTable)
        keys = [key for key, _ in rows]
        before = self._rows[name]
        self._rows[name] = rows
        if keys == self._keys[name]:
            for row_index, ((_, cells), (_, old)) in enumerate(zip(rows, before, strict=True)):
                for column, cell in enumerate(cells):
                    if cell != old[column]:
                        table.update_cell_at((row_index, column), Text(str(cell)))
            return
        selected = self.selected(name)
        table.clear()
        for key, cells in rows:
            table.add_row(*(Text(str(cell)) for cell in cells), key=key)
        self._keys[name] = keys
        if selected in keys:
            table.move_cursor(row=keys.index(selected))

    def selected(self, name: str) -> str | None:
        """The key of the row under the cursor in table ``name``."""
        keys = self._keys[name]
        row = self.query_one(f"#{name}", DataTable).cursor_row
        return keys[row] if 0 <= row < len(keys) else None

    def _focused_table(self) -> str:
        focused = self.focused
        return focused.id if isinstance(focused, DataTable) and focused.id else "slots"

    def _selected_agent(self) -> str | None:
        """The agent of the selected row: a slot, a waiting trigger's agent, a run's agent."""
        name, snapshot = self._focused_table(), self.snapshot
        key = self.selected(name)
        if snapshot is None or key is None:
            return None
        if name == "queue":
            return next((item.agent for item in snapshot.pending if item.name == key), None)
        if name == "runs":
            return next((run.agent for run in snapshot.finished if run.run_id == key), None)
        return key

    async def _steer(self, act: Callable[[], str]) -> None:
        """Do ``act`` (a request to the daemon) off the event loop and say how it went."""
        try:
            said = await asyncio.to_thread(act)
        except ControlError as error:
            self.notify(str(error), severity="error", markup=False)
        else:
            self.notify(said, markup=False)
        await self.refresh_snapshot()

    async def action_pause(self) -> None:
        agent = self._selected_agent()
        if agent is None or self.snapshot is None:
            self.notify("no agent selected", severity="warning")
            return
        paused = agent not in self.snapshot.paused.agents
        await self._steer(lambda: self._pause_text(agent, paused))

    async def action_pause_all(self) -> None:
        paused = not (self.snapshot and self.snapshot.paused.all)
        await self._steer(lambda: self._pause_text(None, paused))

    def _pause_text(self, agent: str | None, paused: bool) -> str:
        from starforge_daemon.cli.control import pause_change

        change = steer.set_pause(self.feed.paths, agent, paused)
        return pause_change(change.before, change.after, agent, paused)

    def action_stop(self) -> None:
        agent = self._selected_agent()
        slot = next((slot for slot in self.snapshot.slots if slot.agent == agent), None) \
            if self.snapshot else None
        if slot is None or not slot.busy:
            self.notify(f"{agent or 'no agent'} has no run going", severity="warning")
            return

        def stop() -> str:
            answer = steer.stop_agent(self.feed.paths, slot.agent)
            return f"stopping {slot.agent}: run {answer['run_id']}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._steer(stop))

        self.push_screen(Confirm(f"Stop {agent}'s run {slot.run_id}? Its trigger goes to "
                                 "processed/failed/ as stopped, without a retry."), answered)

    def action_cancel(self) -> None:
        trigger = self.selected("queue") if self._focused_table() == "queue" else None
        if trigger is None:
            self.notify("select a waiting trigger in the queue first (Tab moves between panes)",
                        severity="warning")
            return

        def cancel() -> str:
            return f"cancelled: {steer.cancel_trigger(self.feed.paths, trigger)['archived']}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._steer(cancel))

        self.push_screen(Confirm(f"Cancel {trigger}? It goes to processed/failed/ as "
                                 "cancelled."), answered)

    def action_open_log(self) -> None:
        name, snapshot = self._focused_table(), self.snapshot
        key = self.selected(name)
        run_id = key if name == "runs" else next(
            (slot.run_id for slot in snapshot.slots if slot.agent == key), None) \
            if snapshot and name == "slots" else None
        if run_id is None:
            self.notify("select a slot or a finished run to see its log", severity="warning")
            return
        try:
            path: Path = run_log(self.feed.paths, run_id)
        except (LogNotFound, ValueError) as error:
            self.notify(str(error), severity="error", markup=False)
            return
        self.push_screen(RunLog(path))

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        """Enter on a slot or a finished run opens its log."""
        self.action_open_log()
