"""The dashboard's other screens: a yes/no question, and a run's log as it grows."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Log, Static

from starforge_daemon.client.runlogs import show
from starforge_daemon.client.stream_render import LogRenderer
from starforge_daemon.client.tail import FileTail

LOG_LINES = 500
REFRESH_SECONDS = 1.0


class Confirm(ModalScreen[bool]):
    """Asks ``question``; dismissed with True on ``y``, False on ``n`` or Escape."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 60; height: auto; border: thick $warning; padding: 1 2;
                         background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "no", show=False)]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Static("y: yes   n: no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class RunLog(Screen[None]):
    """A run's log, rendered as ``starforge logs`` renders it (its last lines), followed
    while the screen is open; a compressed log is shown once."""

    DEFAULT_CSS = """
    RunLog #where { height: 1; background: $boost; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "back"), Binding("q", "close", "back", show=False)]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._renderer = LogRenderer()
        self._tail = None if path.name.endswith(".gz") else FileTail(path, LOG_LINES)

    def compose(self) -> ComposeResult:
        yield Static(str(self.path), id="where", markup=False)
        yield Log(max_lines=10 * LOG_LINES, id="log")
        yield Footer()

    def on_mount(self) -> None:
        if self._tail is None:
            chunks: list[bytes] = []
            try:
                show(self.path, chunks.append, LOG_LINES)
            except OSError as error:  # removed by log upkeep meanwhile, say
                chunks.append(f"cannot read {self.path}: {error}\n".encode())
            self._write(b"".join(chunks), last=True)
            return
        self._follow()
        self.set_interval(REFRESH_SECONDS, self._follow)

    def _follow(self) -> None:
        assert self._tail is not None
        self._write(self._tail.read())

    def _write(self, data: bytes, last: bool = False) -> None:
        rendered = self._renderer.feed(data) + (self._renderer.finish() if last else b"")
        text = rendered.decode(errors="replace")
        if text:
            self.query_one(Log).write(text)

    def action_close(self) -> None:
        self.dismiss(None)
