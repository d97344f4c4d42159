"""Tables for the terminal and for Markdown.

Written here rather than imported: tabulate takes about 30 ms to load, which every
``starforge daemon status`` would pay, and these two layouts are all the commands print.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide East Asian characters take two, combining
    marks none."""
    return sum(0 if unicodedata.combining(char) else
               2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _cells(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> tuple[list[list[str]],
                                                                           list[int]]:
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(map(_width, column)) for column in zip(headers, *cells, strict=True)]
    return cells, widths


def _line(values: Sequence[str], widths: Sequence[int], gap: str) -> str:
    return gap.join(value + " " * (size - _width(value)) for value, size in zip(values, widths,
                                                                               strict=True))


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart, the headers underlined with dashes."""
    cells, widths = _cells(headers, rows)
    lines = [headers, ["-" * size for size in widths], *cells]
    return "\n".join(_line(line, widths, "  ").rstrip() for line in lines)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; the caller escapes ``|`` inside cells."""
    cells, widths = _cells(headers, rows)
    widths = [max(3, size) for size in widths]  # a delimiter cell of three dashes at least
    lines = [headers, ["-" * size for size in widths], *cells]
    return "\n".join(f"| {_line(line, widths, ' | ')} |" for line in lines)
