"""Reading an agent CLI's JSON-lines stdout into a live Progress and a final Summary.

An adapter is fed each raw stdout line as it arrives. Every field of every event is optional and
unknown events are ignored: a CLI upgrade must degrade the picture, never break the run. Pure (no
I/O, no clock) and imports nothing of the package outside core.streams, because the stdlib-only
keeper process imports it too.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Protocol

MAX_LINE_BYTES = 1 << 20
OUTPUT_KINDS = ("auto", "text", "claude", "codex", "gemini")
TOOL_INPUT_CHARS = 120
LAST_TEXT_CHARS = 200
FAILURE_CHARS = 300
RESULT_TEXT_BYTES = 2048

RATE_LIMIT_WORDS = re.compile(r"rate.?limit|overloaded|too many requests|quota|usage limit|"
                              r"resource.?exhausted|\b(?:429|529)\b", re.IGNORECASE)
_STATUS_IN_TEXT = re.compile(r"\b(?:status|http|error)[ :=]*([45]\d\d)\b", re.IGNORECASE)
_INPUT_KEYS = ("command", "file_path", "absolute_path", "notebook_path", "path", "pattern", "url",
               "query", "prompt", "description")


class Progress(NamedTuple):
    """The live view of a run: phase is "starting" (no event yet), "thinking", "tool" or
    "finishing" (a result was seen)."""

    phase: str
    tool: str | None
    tool_input: str | None
    turns: int
    tokens_in: int
    tokens_out: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float | None
    last_text: str | None
    events: int
    skipped: int
    rate_limit_until: float | None


class Summary(NamedTuple):
    """What a run did, at its end. failure is the agent's own account of failing, else None."""

    got_result: bool
    failure: str | None
    rate_limited: bool
    session_id: str | None
    model: str | None
    turns: int | None
    tokens_in: int
    tokens_out: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float | None
    result_text: str | None
    permission_denials: int
    api_error_status: int | None
    terminal_reason: str | None
    subtype: str | None
    expects_result: bool  # the CLI always ends with a result: one missing means it did not finish
    skipped_lines: int  # unreadable or over MAX_LINE_BYTES
    rate_limit_until: float | None  # the reset time of the last rate limit that bit


class Tokens(NamedTuple):
    """Token counts; input is without cache reads and cache writes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.output + other.output,
                      self.cache_read + other.cache_read, self.cache_creation + other.cache_creation)

    def __sub__(self, other: Tokens) -> Tokens:
        return Tokens(self.input - other.input, self.output - other.output,
                      self.cache_read - other.cache_read, self.cache_creation - other.cache_creation)

    def nonzero(self) -> bool:
        return any((self.input, self.output, self.cache_read, self.cache_creation))


class Adapter(Protocol):
    kind: str
    expects_result: bool
    events: int  # understood so far: a reader compares it to see whether anything happened
    phase: str

    def feed(self, line: bytes) -> None: ...

    def skip(self) -> None: ...

    def progress(self) -> Progress: ...

    def summary(self) -> Summary: ...


def adapter_kind(output: str, program: str) -> str:
    """The adapter for an OUTPUT setting: "auto" picks by the exact basename of program (argv[0],
    maybe a path) among claude, codex and gemini, else "text"; other values are returned as given."""
    if output != "auto":
        return output
    name = program.rstrip("/").rsplit("/", 1)[-1]
    return name if name in ("claude", "codex", "gemini") else "text"


def new_adapter(kind: str) -> Adapter | None:
    """A fresh adapter for kind, None for "text" or an unknown kind. The adapter modules import
    this one, so they are imported here, when first needed, not at module level."""
    if kind == "claude":
        from starforge_daemon.core.streams.claude import ClaudeAdapter
        return ClaudeAdapter()
    if kind == "codex":
        from starforge_daemon.core.streams.codex import CodexAdapter
        return CodexAdapter()
    if kind == "gemini":
        from starforge_daemon.core.streams.gemini import GeminiAdapter
        return GeminiAdapter()
    return None


# --- small readers: every field may be missing or of the wrong type -------------------------------

def parse_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object on line, or None when it is too long, not JSON or not an object."""
    if len(line) > MAX_LINE_BYTES + 2:  # + the line ending
        return None
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value == value and abs(value) < 1e18 else None  # not NaN nor huge


def count(value: Any) -> int:
    """A non-negative token count, 0 when absent."""
    return max(as_int(value) or 0, 0)


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None


def first(mapping: dict[str, Any], *keys: str) -> Any:
    """The value of the first key present, for fields spelled differently across versions."""
    return next((mapping[key] for key in keys if mapping.get(key) is not None), None)


def one_line(text: str, limit: int) -> str:
    """text with all whitespace runs collapsed to one space, cut to limit characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def last_line(text: str, limit: int = LAST_TEXT_CHARS) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1], limit) if lines else None


def first_line(text: str | None, limit: int = FAILURE_CHARS) -> str | None:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return one_line(lines[0], limit) if lines else None


def cut_utf8(text: str | None, limit: int = RESULT_TEXT_BYTES) -> str | None:
    """text cut to limit bytes of UTF-8, never inside a character."""
    if text is None:
        return None
    data = text.encode("utf-8", "replace")  # a lone surrogate from JSON becomes "?"
    return data[:limit].decode("utf-8", "ignore") if len(data) > limit else data.decode("utf-8")


def summarise_input(value: Any) -> str | None:
    """One line saying what a tool was asked: the command or path when there is one, else the
    arguments as compact JSON."""
    if value is None:
        return None
    if isinstance(value, dict):
        chosen = next((value[key] for key in _INPUT_KEYS if as_str(value.get(key))), None)
        if chosen is not None:
            return one_line(chosen, TOOL_INPUT_CHARS)
    if isinstance(value, str):
        return one_line(value, TOOL_INPUT_CHARS)
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return None
    return one_line(text, TOOL_INPUT_CHARS)


def epoch_seconds(value: Any) -> float | None:
    """A reset time as epoch seconds: from seconds, milliseconds (> 1e11) or an ISO-8601 string."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            from datetime import UTC, datetime  # not loaded into the keeper until needed

            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    number = as_float(value)
    if number is None or number <= 0 or number == float("inf"):
        return None
    return number / 1000 if number > 1e11 else number


def is_rate_limit(*texts: str | None) -> bool:
    return any(text and RATE_LIMIT_WORDS.search(text) for text in texts)


def status_in(text: str | None) -> int | None:
    """An HTTP status a CLI quotes in an error message ("status 429", "HTTP 529"), if any."""
    found = _STATUS_IN_TEXT.search(text or "")
    return int(found.group(1)) if found else None


class StreamAdapter:
    """Bookkeeping shared by the adapters: lines to events, counters, phase, tool and text.

    A subclass implements handle(event) and summary(); it may override totals() when its token and
    turn counts are not simply the usage and turns attributes.
    """

    kind = "text"
    expects_result = True

    def __init__(self) -> None:
        self.phase = "starting"
        self.tool: str | None = None
        self.tool_input: str | None = None
        self.last_text: str | None = None
        self.events = 0
        self.skipped = 0
        self.rate_limit_until: float | None = None
        self.session_id: str | None = None
        self.model: str | None = None
        self.turns = 0
        self.usage = Tokens()
        self.cost_usd: float | None = None

    def feed(self, line: bytes) -> None:
        """Take one stdout line; blank lines are ignored, unreadable ones counted in skipped."""
        if not line.strip():
            return
        event = parse_line(line)
        if event is None:
            self.skipped += 1
            return
        try:
            self.handle(event)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
            self.skipped += 1  # a shape no handler foresaw must not stop the run being watched
            return
        self.events += 1

    def skip(self) -> None:
        """Count a line the reader dropped unread (longer than MAX_LINE_BYTES)."""
        self.skipped += 1

    def handle(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def totals(self) -> tuple[Tokens, int]:
        return self.usage, self.turns

    def thinking(self) -> None:
        self.phase, self.tool, self.tool_input = "thinking", None, None

    def using(self, tool: str | None, arguments: Any) -> None:
        self.phase, self.tool, self.tool_input = "tool", tool or "tool", summarise_input(arguments)

    def said(self, text: Any) -> None:
        """Assistant text arrived: it becomes last_text when it has a non-empty line."""
        line = last_line(text) if isinstance(text, str) else None
        if line:
            self.last_text = line

    def progress(self) -> Progress:
        usage, turns = self.totals()
        return Progress(phase=self.phase, tool=self.tool if self.phase == "tool" else None,
                        tool_input=self.tool_input if self.phase == "tool" else None, turns=turns,
                        tokens_in=usage.input, tokens_out=usage.output,
                        cache_read_tokens=usage.cache_read,
                        cache_creation_tokens=usage.cache_creation, cost_usd=self.live_cost(),
                        last_text=self.last_text, events=self.events, skipped=self.skipped,
                        rate_limit_until=self.rate_limit_until)

    def live_cost(self) -> float | None:
        """The cost so far, as the CLI reported it (an adapter may add an estimate)."""
        return self.cost_usd

    def summary(self) -> Summary:
        raise NotImplementedError

    def make_summary(self, **fields: Any) -> Summary:
        """A Summary of the shared state, with fields given by the adapter taking precedence."""
        usage, turns = self.totals()
        values: dict[str, Any] = {
            "got_result": False, "failure": None, "rate_limited": False,
            "session_id": self.session_id, "model": self.model, "turns": turns,
            "tokens_in": usage.input, "tokens_out": usage.output,
            "cache_read_tokens": usage.cache_read, "cache_creation_tokens": usage.cache_creation,
            "cost_usd": self.cost_usd, "result_text": None, "permission_denials": 0,
            "api_error_status": None, "terminal_reason": None, "subtype": None,
            "expects_result": self.expects_result, "skipped_lines": self.skipped,
            "rate_limit_until": self.rate_limit_until}
        values.update(fields)
        return Summary(**values)
