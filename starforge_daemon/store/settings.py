"""Settings: the environment first, then the project's ``.env``, each value checked.

The fields of :class:`Settings` are the one table of settings: each declares its name, type,
default, what it accepts and what it means. Checking is done here by hand, not by a settings
library: ``starforge trigger`` loads this module on every handoff, and its messages say what
is allowed in the user's words.
"""

from __future__ import annotations

import io
import math
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from starforge_daemon.core.command import PLACEHOLDERS, placeholders_in, unknown_placeholders
from starforge_daemon.core.models import AGENT_NAME_RULE, is_agent_name
from starforge_daemon.store.paths import ProjectPaths

DEFAULT_AGENT_COMMAND = "claude --print --permission-mode bypassPermissions {prompt}"


AGENTS_PER_CPU = 4
MEMORY_PER_AGENT = 512 * 1024 * 1024


def automatic_limit() -> int:
    """``MAX_CONCURRENT_AGENTS=auto``: agents mostly wait on their model, so a few per CPU,
    but never more than one per 512 MiB of memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min((os.cpu_count() or 1) * AGENTS_PER_CPU, memory // MEMORY_PER_AGENT))


def parse_pools(text: str) -> dict[str, tuple[str, ...]]:
    """``pool=a,b,c; other=d,e`` -> ``{"pool": ("a", "b", "c"), "other": ("d", "e")}``."""
    pools: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, equals, members_text = part.partition("=")
        members = tuple(filter(None, (m.strip() for m in members_text.split(","))))
        name = name.strip()
        if not equals or not members:
            raise ValueError(f"{part!r} is not a pool: write NAME=MEMBER,MEMBER,... and "
                             "separate pools with ';'")
        for agent in (name, *members):
            if not is_agent_name(agent):
                raise ValueError(f"{agent!r} is not an agent name: names are {AGENT_NAME_RULE}")
        if name in members or name in pools:
            raise ValueError(f"pool {name!r} is defined twice or contains itself")
        pools[name] = members
    members_everywhere = {m for members in pools.values() for m in members}
    if members_everywhere & pools.keys():
        raise ValueError("a pool cannot be a member of another pool")
    return pools


CLAUDE_INSTALL = "install Claude Code (npm install -g @anthropic-ai/claude-code)"


class SettingsError(Exception):
    """A setting has a bad value, or ``.env`` cannot be read; the message says where and what,
    on one line."""


class WorktreeMode(StrEnum):
    """Where runs work: the project root, or a git worktree per agent name or per ticket."""

    OFF = "off"
    PER_AGENT = "per-agent"
    PER_TICKET = "per-ticket"


# -- kinds of values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """What one setting accepts: ``allowed`` in words (it follows "must be"), and ``parse``,
    which turns the text into the value or raises ValueError. A ValueError without a message
    means "must be <allowed>"; one with a message says more."""

    allowed: str
    parse: Callable[[str], Any]


_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word not in _TRUE and word not in _FALSE:
        raise ValueError
    return word in _TRUE


SWITCH = Kind("true or false (also yes/no, on/off, 1/0)", _switch)


def _range_words(noun: str, low: float, high: float | None, above: bool) -> str:
    if high is not None:
        return f"{noun} from {low:g} to {high:g}"
    return f"{noun} greater than {low:g}" if above else f"{noun} of at least {low:g}"


def whole_number(low: int, high: int | None = None, *, also: str | None = None) -> Kind:
    """An integer in [low, high]; ``also`` is one word accepted besides (``auto``)."""

    def parse(text: str) -> int | str:
        if also is not None and text.strip() == also:
            return also
        try:
            value = int(text)
        except ValueError:
            raise ValueError from None  # Python's words ("invalid literal...") are not the user's
        if value < low or (high is not None and value > high):
            raise ValueError
        return value

    allowed = _range_words("a whole number", low, high, above=False)
    return Kind(f"{allowed}, or {also}" if also else allowed, parse)


def number(low: float, high: float | None = None, *, above: bool = False) -> Kind:
    """A finite number in [low, high], or above ``low`` when ``above``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError from None
        if (not math.isfinite(value) or value < low or (above and value == low)
                or (high is not None and value > high)):
            raise ValueError
        return value

    return Kind(_range_words("a number", low, high, above), parse)


def choice(options: type[StrEnum]) -> Kind:
    words = [option.value for option in options]

    def parse(text: str) -> StrEnum:
        try:
            return options(text.strip())
        except ValueError:
            raise ValueError from None

    return Kind(", ".join(words[:-1]) + f" or {words[-1]}", parse)


def _agent_command(text: str) -> str:
    try:
        words = shlex.split(text)
    except ValueError as error:  # shlex says "No closing quotation" or "No escaped character"
        raise ValueError(f"cannot be split into words: {str(error).lower()}") from None
    if not words:
        raise ValueError("is empty: it must name the program to run")
    unknown = unknown_placeholders(words)
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; the known ones are "
                         f"{known}")
    return text


def _pools(text: str) -> str:
    parse_pools(text)
    return text


def _revision(text: str) -> str:
    """It becomes one git argument: never an option, never blank or split."""
    if not text or text.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ValueError
    return text


# -- the settings ------------------------------------------------------------------------------


def setting(default: Any, kind: Kind, description: str) -> Any:
    """One row of the settings table, declared as a field of :class:`Settings`."""
    return field(default=default, metadata={"kind": kind, "description": description})


@dataclass(frozen=True)
class Settings:
    """The project's settings. Class attributes hold the defaults (``Settings.AGENT_TIMEOUT``);
    :func:`load_settings` reads and checks the real ones. No ``slots``: they would hide the
    class-level defaults."""

    PARALLEL_DAEMON: bool = setting(
        False, SWITCH, "false: one run at a time, strict FIFO; true: runs in parallel")
    MAX_CONCURRENT_AGENTS: int | str = setting(
        999, whole_number(1, also="auto"),
        "parallel mode: runs at once (still one per agent name); auto: 4 per CPU, at most one "
        "per 512 MiB of memory")
    PROCESS_MONITOR_INTERVAL: float = setting(
        10.0, number(0, above=True), "seconds between sweeps (missed triggers, upkeep)")
    AGENT_TIMEOUT: float = setting(
        1800.0, number(0, above=True), "seconds a run may take before it is stopped")
    AGENT_KILL_GRACE: float = setting(
        10.0, number(0), "seconds between SIGTERM and SIGKILL when a run is stopped")
    AGENT_COMMAND: str = setting(
        DEFAULT_AGENT_COMMAND,
        Kind("a command line with the placeholders " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
             _agent_command),
        "the agent command template, split into words like a shell would, never run by one")
    MAX_TRIGGER_BYTES: int = setting(
        1024 * 1024, whole_number(64), "larger trigger files are rejected without being read")
    TRIGGER_SETTLE_SECONDS: float = setting(
        2.0, number(0),
        "a trigger that does not parse yet and was written this recently gets another look")
    ALLOW_FOREIGN_TRIGGERS: bool = setting(
        False, SWITCH, "accept trigger files owned by another user than the daemon's")
    LOG_MAX_BYTES: int = setting(
        100 * 1024 * 1024, whole_number(4096),
        "per agent: the most its run logs may take; also the cap of one run's log")
    LOG_RETENTION_DAYS: float = setting(
        7.0, number(0, above=True), "run logs older than this many days are deleted")
    LOG_COMPRESS_AFTER_HOURS: float = setting(
        24.0, number(0), "run logs older than this many hours are gzipped")
    DAEMON_LOG_MAX_BYTES: int = setting(
        10 * 1024 * 1024, whole_number(4096), "daemon.log rotates at this size")
    MAX_RETRIES: int = setting(
        0, whole_number(0, 100),
        "retries after a failed or timed-out run (a trigger's max_retries overrides it)")
    RETRY_BACKOFF: float = setting(
        30.0, number(0), "seconds before the first retry, doubling with each further one")
    RETRY_BACKOFF_MAX: float = setting(3600.0, number(0), "the longest wait before a retry")
    AGENT_POOLS: str = setting(
        "", Kind("pools written NAME=MEMBER,MEMBER,... and separated by ';'", _pools),
        "pools of interchangeable agents: junior-dev=junior-dev-a,junior-dev-b; qa=qa-1")
    MIN_FREE_MEMORY_PERCENT: float = setting(
        10.0, number(0, 100), "no new run starts while less memory than this is available")
    WORKTREE_MODE: WorktreeMode = setting(  # noqa: RUF009 (setting() is a field())
        WorktreeMode.OFF, choice(WorktreeMode),
        "off: runs work in the project root; per-agent / per-ticket: in a git worktree")
    WORKTREE_BASE: str = setting(
        "HEAD", Kind("one commit, like HEAD, main or v1.2 (no spaces, no leading '-')",
                     _revision),
        "the commit a new worktree branch starts from")

    @property
    def pools(self) -> dict[str, tuple[str, ...]]:
        return parse_pools(self.AGENT_POOLS)

    @property
    def command_words(self) -> list[str]:
        return shlex.split(self.AGENT_COMMAND)

    @property
    def agent_program_problem(self) -> str | None:
        """Why no run of ``AGENT_COMMAND`` could start its program, or None. A program named by
        a placeholder is chosen per trigger, so only its runs can tell."""
        program = self.command_words[0]
        if placeholders_in(program) or self.agent_program:
            return None
        if "/" in program:
            return (f"AGENT_COMMAND runs {program!r}, which is not an executable file: fix "
                    "AGENT_COMMAND in .env")
        advice = CLAUDE_INSTALL if program == "claude" else f"install {program}"
        return f"AGENT_COMMAND runs {program!r}, which is not on PATH: {advice} or set AGENT_COMMAND in .env"

    @property
    def agent_program(self) -> str | None:
        """The agent command's program as an absolute path: looked up on PATH, or taken as
        it is (from the current directory, the project root in the daemon) when it names a
        path. None when there is no such executable."""
        import shutil  # a few milliseconds that only the daemon and its checks pay

        program = self.command_words[0]
        if "/" not in program:
            return shutil.which(program)
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return os.path.abspath(program)
        return None

    @property
    def concurrency_limit(self) -> int:
        if not self.PARALLEL_DAEMON:
            return 1
        if self.MAX_CONCURRENT_AGENTS == "auto":
            return automatic_limit()
        return int(self.MAX_CONCURRENT_AGENTS)

    @property
    def mode_text(self) -> str:
        if self.PARALLEL_DAEMON:
            automatic = " (auto)" if self.MAX_CONCURRENT_AGENTS == "auto" else ""
            return (f"Parallel execution enabled (up to {self.concurrency_limit}{automatic} "
                    "agents at once)")
        return "Sequential execution (one agent at a time, strict FIFO)"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the table declares it, for listings and templates."""

    name: str
    default: Any
    kind: Kind
    description: str

    @property
    def allowed(self) -> str:
        return self.kind.allowed

    @property
    def default_text(self) -> str:
        """The default as written in ``.env``."""
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(spec.name, spec.default, spec.metadata["kind"], spec.metadata["description"])
    for spec in fields(Settings))
_SETTING_NAMES = frozenset(item.name for item in SETTINGS)


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvValue:
    """A variable from ``.env``: its value (None for a bare name) and the line it is on."""

    value: str | None
    line: int


def _shown_statement(text: str) -> str:
    """A statement ``.env`` could not parse, as an error shows it: a variable that is not a
    setting may hold a secret, so only its name is shown."""
    statement = text.strip().splitlines()[0] if text.strip() else ""
    name, equals, _ = statement.removeprefix("export ").partition("=")
    if equals and name.strip() not in _SETTING_NAMES:
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


def read_env_file(path: Path) -> dict[str, EnvValue]:
    """The variables of a ``.env`` file, with ``${VAR}`` expanded as python-dotenv does.

    A statement that cannot be parsed raises :class:`SettingsError` naming its line: reading
    on without it would quietly fall back to a default (the agent command, say).
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
                                f"cannot parse {_shown_statement(statement)} "
                                f"({_parse_problem(statement)})")
    named = [binding for binding in bindings if binding.key is not None]
    lines = {binding.key: binding.original.line for binding in named}
    values = resolve_variables(((b.key, b.value) for b in named), override=True)
    return {name: EnvValue(value, lines[name]) for name, value in values.items()}


def _env_file_values(paths: ProjectPaths) -> dict[str, EnvValue]:
    return read_env_file(paths.env_file) if paths.env_file.is_file() else {}


def load_settings(paths: ProjectPaths) -> Settings:
    """Read settings, the environment first, then ``.env``; raises :class:`SettingsError` for
    a ``.env`` that does not parse or a bad value, saying where it came from."""
    from_file = _env_file_values(paths)
    values: dict[str, Any] = {}
    for item in SETTINGS:
        if item.name in os.environ:
            text: str | None = os.environ[item.name]
            where = "environment"
        elif item.name in from_file:
            text = from_file[item.name].value
            where = f"{paths.env_file.name} line {from_file[item.name].line}"
        else:
            continue
        if text is None:
            raise SettingsError(f"{where}: {item.name} has no value (write {item.name}=VALUE)")
        try:
            values[item.name] = item.kind.parse(text)
        except ValueError as error:
            problem = str(error) or f"must be {item.allowed}"
            raise SettingsError(f"{where}: {item.name}={text!r}: {problem}") from None
    return Settings(**values)


def dotenv_extras(paths: ProjectPaths) -> dict[str, str]:
    """Variables from ``.env`` that the real environment lacks; agents see them too."""
    return {name: entry.value for name, entry in _env_file_values(paths).items()
            if entry.value is not None and name not in os.environ}
