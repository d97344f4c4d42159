"""Inline SVG for the HTML report, written as text: a handful of elements and a horizontal bar
chart.

Every piece of text and every attribute value goes through ``escape``, so a name or a reason
read from the history can never become markup. Written here rather than drawn with a plotting
library: the report needs rectangles, lines and text with hover titles, and the page must open
offline (see the README's design notes).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

FONT = "font-family:system-ui,sans-serif;font-size:12px"
LABEL_WIDTH = 160  # the column of names left of a chart's plot area
LABEL_CHARS = 20  # longer names are cut, with the whole name in their hover title


def escape(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _value(value: object) -> object:
    """An attribute's value: a float to at most two decimals (``12.5``, ``3``)."""
    return _number(value) if isinstance(value, float) else value


def element(tag: str, attributes: dict[str, object], body: str = "") -> str:
    """``<tag a="v">body</tag>``: the values escaped (floats to two decimals), ``body`` as
    given (already markup); ``None`` values are left out. Keyword names become attribute
    names: ``text_anchor`` is ``text-anchor``, ``class_`` is ``class``."""
    pairs = "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(_value(value))}"'
                    for name, value in attributes.items() if value is not None)
    return f"<{tag}{pairs}>{body}</{tag}>"


def title(text: str) -> str:
    """A hover title, the first child of the element it describes."""
    return element("title", {}, escape(text))


def text(x: float, y: float, content: str, **attributes: object) -> str:
    return element("text", {"x": x, "y": y, **attributes}, escape(content))


def label(x: float, y: float, name: str, **attributes: object) -> str:
    """A name at most ``LABEL_CHARS`` long, the whole name in its hover title when cut."""
    if len(name) <= LABEL_CHARS:
        return text(x, y, name, **attributes)
    shown = escape(name[:LABEL_CHARS - 1] + "…")
    return element("text", {"x": x, "y": y, **attributes}, title(name) + shown)


def rect(x: float, y: float, width: float, height: float, fill: str, hover: str | None = None,
         **attributes: object) -> str:
    return element("rect", {"x": x, "y": y, "width": width, "height": height, "fill": fill,
                            **attributes}, title(hover) if hover else "")


def line(x1: float, y1: float, x2: float, y2: float, stroke: str) -> str:
    return element("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": stroke})


def svg(width: float, height: float, body: Sequence[str], description: str,
        **attributes: object) -> str:
    """A standalone ``<svg>`` of that size; ``description`` is its accessible name."""
    return element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": width,
                           "height": height, "viewBox": f"0 0 {_number(width)} {_number(height)}",
                           "role": "img", "aria-label": description, "style": FONT,
                           **attributes}, "".join(body))


@dataclass(frozen=True)
class Segment:
    """One bar of a row, drawn from zero; a row's segments overlap, the first one underneath."""

    value: float
    colour: str
    hover: str


@dataclass(frozen=True)
class BarRow:
    """A row of a bar chart: a name, its bars (none when it has no value) and the text after
    them."""

    name: str
    note: str
    segments: list[Segment] = field(default_factory=list)


def bar_chart(rows: Sequence[BarRow], description: str, *, width: float = 550,
              row_height: float = 22, note_width: float = 200) -> str:
    """Horizontal bars on one scale, from zero to the largest value, one row per name."""
    largest = max((segment.value for row in rows for segment in row.segments), default=0.0)
    plot = width - LABEL_WIDTH - note_width
    body = []
    for index, row in enumerate(rows):
        top = index * row_height
        middle = top + row_height / 2 + 4
        body.append(label(LABEL_WIDTH - 8, middle, row.name, text_anchor="end"))
        end = 0.0
        for segment in row.segments:
            length = plot * segment.value / largest if largest > 0 else 0.0
            end = max(end, length)
            body.append(rect(float(LABEL_WIDTH), top + 4, max(length, 1.0), row_height - 8,
                             segment.colour, segment.hover, class_="bar"))
        body.append(text(LABEL_WIDTH + end + 6, middle, row.note))
    return svg(width, max(len(rows), 1) * row_height, body, description, class_="chart")
