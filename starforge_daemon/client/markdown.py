"""Text inside the report's Markdown: code spans and table cells."""

from __future__ import annotations


def code(text: str | None) -> str:
    """``text`` as a code span; "-" when there is none."""
    return f"`{text}`" if text else "-"


def cell(text: str | None) -> str:
    """``text`` safe in a table cell (its pipes escaped, on one line); "-" when there is none."""
    return (text or "-").replace("|", "\\|").replace("\n", " ")
