"""Reading a ``.env`` file: its variables, each with the line it is on, and errors that name
the file and line of a statement that does not parse."""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path


class SettingsError(Exception):
    """A setting has a bad value, or ``.env`` cannot be read; the message says where and what,
    on one line."""


@dataclass(frozen=True, slots=True)
class EnvValue:
    """A variable from ``.env``: its value (None for a bare name) and the line it is on."""

    value: str | None
    line: int


def _shown_statement(text: str, settings: Collection[str]) -> str:
    """A statement ``.env`` could not parse, as an error shows it: a variable that is not one
    of the ``settings`` may hold a secret, so only its name is shown."""
    statement = text.strip().splitlines()[0] if text.strip() else ""
    name, equals, _ = statement.removeprefix("export ").partition("=")
    if equals and name.strip() not in settings:
        return f"{name.strip()}=..."
    return statement if len(statement) <= 80 else statement[:77] + "..."


def _parse_problem(text: str) -> str:
    """What is wrong with a statement python-dotenv could not parse, in words."""
    statement = text.strip()
    name, equals, value = statement.removeprefix("export ").partition("=")
    if not equals:
        return "not NAME=VALUE"
    if not name.strip() or any(ch.isspace() for ch in name.strip()):
        return "a name must be one word before the '='"
    value = value.lstrip()
    quote = value[:1]
    if quote in ("'", '"'):
        closing = re.search(rf"(?<!\\){quote}", value[1:])
        if closing is None:
            return "unterminated quote"
        return "text after the closing quote"
    return "not NAME=VALUE"


def read_env_file(path: Path, settings: Collection[str]) -> dict[str, EnvValue]:
    """The variables of a ``.env`` file, with ``${VAR}`` expanded as python-dotenv does.

    A statement that cannot be parsed raises :class:`SettingsError` naming its line: reading
    on without it would quietly fall back to a default (the agent command, say). Only the
    names in ``settings`` are shown whole in that message.
    """
    from dotenv.main import resolve_variables  # only clients with a .env pay for it
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SettingsError(f"{path.name}: not UTF-8 text (byte {error.object[error.start]:#04x} "
                            f"at offset {error.start})") from None
    except OSError as error:
        raise SettingsError(f"{path.name}: cannot be read ({error.strerror})") from None
    bindings = list(parse_stream(io.StringIO(text)))
    for binding in bindings:
        if binding.error:
            statement = binding.original.string
            blank_lines = statement[:len(statement) - len(statement.lstrip())].count("\n")
            raise SettingsError(f"{path.name} line {binding.original.line + blank_lines}: "
                                f"cannot parse {_shown_statement(statement, settings)} "
                                f"({_parse_problem(statement)})")
    named = [binding for binding in bindings if binding.key is not None]
    lines = {binding.key: binding.original.line for binding in named}
    values = resolve_variables(((b.key, b.value) for b in named), override=True)
    return {name: EnvValue(value, lines[name]) for name, value in values.items()}
