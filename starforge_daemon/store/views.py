"""Typed, tolerant views of the daemon's files for clients.

A client reads files that another version of the daemon wrote, or that something damaged, so a
view never raises: each field is the value as saved when it has the field's type, else None.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

View = TypeVar("View")


@functools.cache
def _kinds(cls: type) -> dict[str, type]:
    """The type of each ``X | None`` field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    kinds = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if isinstance(hint, types.UnionType):
            kind, *_ = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            kinds[field.name] = kind
    return kinds


def typed(value: Any, kind: type) -> Any:
    """``value`` when it is a ``kind`` (a bool is no number; an int serves as a float), else
    None."""
    if isinstance(value, bool) and kind is not bool:
        return None
    if kind is float and isinstance(value, int):
        return float(value)
    return value if isinstance(value, kind) else None


def view_of(cls: type[View], data: Mapping[str, Any], **given: Any) -> View:
    """Dataclass ``cls`` from the saved object ``data``: each ``X | None`` field is
    :func:`typed`; the other fields come in ``given``."""
    return cls(**{name: typed(data.get(name), kind) for name, kind in _kinds(cls).items()
                  if name not in given}, **given)
