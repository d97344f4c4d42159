"""A run log of JSON-lines events (Claude Code's stream-json, Codex's ``exec --json``, Gemini's
stream-json) as readable text, for ``starforge logs``.

The kind is read from the log itself, line by line: a JSON object whose ``type`` is one these
CLIs print is rendered; any other line (stderr, the keeper's notes, a text agent's output)
passes through as it is. Once a log has shown an event, JSON lines of unknown types are
dropped, as the adapters ignore them. Every field is optional, as in core.streams.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starforge_daemon.core.streams import (
    MAX_LINE_BYTES,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    epoch_seconds,
    first,
    parse_line,
    summarise_input,
)
from starforge_daemon.core.streams.claude import failure_of
from starforge_daemon.core.streams.codex import TOOL_ITEMS, tool_call

RESULT_LINES = 4  # of a tool's output
THINKING_LINES = 3
LINE_CHARS = 200  # of one line of a tool's output or thinking

Lines = list[str]


def _clip(line: str, limit: int = LINE_CHARS) -> str:
    return line if len(line) <= limit else line[:limit - 1] + "…"


def block(label: str, text: str, limit: int | None = None, indent: str = "  ") -> Lines:
    """text under label: its first line after the label, the others indented; cut to limit
    lines (each clipped) with a note of how many were left out."""
    lines = text.strip("\n").splitlines() or [""]
    if limit is None:
        return [label + lines[0], *(indent + line for line in lines[1:])]
    shown = [_clip(line) for line in lines[:limit]]
    rest = len(lines) - limit
    return [label + shown[0], *(indent + line for line in shown[1:]),
            *([f"{indent}… (+{rest} lines)"] if rest > 0 else [])]


def tool_output(text: str | None, error: bool = False) -> Lines:
    """A tool's output under its call: ``  ⎿ first lines … (+N lines)``."""
    label = "  ⎿ error: " if error else "  ⎿ "
    return block(label, text if text and text.strip() else "(no output)", RESULT_LINES, "    ")


def tool_line(name: str | None, arguments: Any) -> str:
    summary = summarise_input(arguments)
    return f"→ {name or 'tool'}" + (f": {summary}" if summary else "")


def _joined(parts: list[str | None]) -> str:
    return " · ".join(part for part in parts if part)


def _turns(value: Any) -> str | None:
    turns = as_int(value)
    return None if turns is None else f"{turns} turn{'' if turns == 1 else 's'}"


def _seconds(milliseconds: Any) -> str | None:
    value = as_float(milliseconds)
    return None if value is None else f"{value / 1000:.1f} s"


def _text_of(content: Any) -> str:
    """A tool result's content: a string, or text blocks."""
    if isinstance(content, str):
        return content
    return "\n".join(text for item in as_list(content)
                     if (text := as_str(as_dict(item).get("text"))))


class LogRenderer:
    """Fed a log's bytes in chunks of any size, gives back the readable text of its complete
    lines. A line that cannot be an event (it does not start with ``{``) goes out at once, even
    unfinished, so a text agent's prompt shows while it waits; a possible event waits for its
    end (or MAX_LINE_BYTES). :meth:`finish` gives what is still held when the log ends."""

    def __init__(self) -> None:
        self._held = b""  # the start of a line that may be an event
        self._passing = False  # inside a line already passed on unfinished
        self._seen_event = False
        self._said: str | None = None  # the last assistant text, not repeated by the result
        self._gemini_text = ""  # assistant text arriving in pieces
        self._codex_started: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], Lines]] = {
            "system": self._system, "assistant": self._assistant, "user": self._user,
            "rate_limit_event": self._rate_limit, "result": self._result, "error": self._error,
            "init": self._init, "message": self._message, "tool_use": self._tool_use,
            "tool_result": self._tool_result, "thread.started": self._init,
            "turn.started": lambda _event: [], "turn.completed": self._turn,
            "turn.failed": self._turn, "item.started": self._item, "item.updated": self._item,
            "item.completed": self._item}

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        if self._passing:
            end = data.find(b"\n")
            if end < 0:
                return data
            out.append(data[:end + 1])
            data, self._passing = data[end + 1:], False
        lines = (self._held + data).split(b"\n")
        self._held = lines.pop()
        out.extend(self._line(line) for line in lines)
        start = self._held.lstrip()
        if (start and not start.startswith(b"{")) or len(self._held) > MAX_LINE_BYTES:
            out.append(self._line(self._held, end=b""))
            self._held, self._passing = b"", True
        return b"".join(out)

    def finish(self) -> bytes:
        """What is held at the end of the log: an unfinished line, assistant text in pieces."""
        held, self._held = self._held, b""
        return (self._line(held, end=b"") if held else b"") + _encode(self._pending_text())

    def _line(self, line: bytes, end: bytes = b"\n") -> bytes:
        """One line, rendered; passed on with ``end`` when it is no event."""
        event = parse_line(line) if line.lstrip().startswith(b"{") else None
        handler = self._handlers.get(event.get("type")) if event else None
        if event is None or handler is None:
            if event is not None and self._seen_event:
                return b""
            return _encode(self._pending_text()) + line + end
        self._seen_event = True
        delta = event.get("type") == "message" and event.get("role") == "assistant" \
            and event.get("delta") is True
        lines = [] if delta else self._pending_text()
        try:
            lines += handler(event)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
            lines.append(line.decode("utf-8", "replace"))  # a shape not foreseen: as it is
        return _encode(lines)

    def _pending_text(self) -> Lines:
        text, self._gemini_text = self._gemini_text, ""
        return self._say(text) if text.strip() else []

    def _say(self, text: str, label: str = "assistant: ") -> Lines:
        self._said = text.strip()
        return block(label, text)

    # --- Claude Code ------------------------------------------------------------------------

    def _system(self, event: dict[str, Any]) -> Lines:
        subtype = event.get("subtype")
        if subtype == "init":
            return self._init(event)
        if subtype == "api_retry":
            tries = as_int(event.get("max_retries"))
            why = " ".join(str(part) for part in (as_int(event.get("error_status")),
                                                  as_str(event.get("error"))) if part)
            return [f"[retry] attempt {as_int(event.get('attempt'))}"
                    + (f"/{tries}" if tries else "") + (f" after {why}" if why else "")]
        if subtype == "task_notification" and as_str(event.get("summary")):
            return [f"[task] {event['summary']}"]
        return []

    def _assistant(self, event: dict[str, Any]) -> Lines:
        lines: Lines = []
        label = "error: " if event.get("is_api_error_message") else "assistant: "
        for item in as_list(as_dict(event.get("message")).get("content")):
            item = as_dict(item)
            kind = item.get("type")
            if kind == "text" and as_str(item.get("text")):
                lines += self._say(item["text"], label)
            elif kind == "thinking" and as_str(item.get("thinking")):
                lines += block("thinking: ", item["thinking"], THINKING_LINES)
            elif kind == "tool_use":
                lines.append(tool_line(as_str(item.get("name")), item.get("input")))
        return lines

    def _user(self, event: dict[str, Any]) -> Lines:
        content = as_dict(event.get("message")).get("content")
        if isinstance(content, str):
            return block("user: ", content)
        lines: Lines = []
        interrupted = as_dict(event.get("tool_use_result")).get("interrupted") is True
        for item in as_list(content):
            item = as_dict(item)
            if item.get("type") == "tool_result":
                text = _text_of(item.get("content"))
                lines += tool_output(text + (" (interrupted)" if interrupted else ""),
                                     item.get("is_error") is True)
            elif item.get("type") == "text" and as_str(item.get("text")):
                lines += block("user: ", item["text"])
        return lines

    def _rate_limit(self, event: dict[str, Any]) -> Lines:
        info = as_dict(event.get("rate_limit_info")) or event
        status = as_str(info.get("status"))
        if status == "allowed":
            return []
        until = epoch_seconds(info.get("resetsAt", info.get("resets_at")))
        resets = datetime.fromtimestamp(until).astimezone().strftime("resets %Y-%m-%d %H:%M %Z") \
            if until else None
        return ["[rate limit] " + _joined([status or "hit", as_str(info.get("rateLimitType")),
                                          resets])]

    def _result(self, event: dict[str, Any]) -> Lines:
        if "status" in event or "stats" in event:  # Gemini's
            return self._gemini_result(event)
        failure = failure_of(event)
        denials = len(as_list(event.get("permission_denials")))
        head = "[result] " + _joined([
            f"error: {failure}" if failure else "success", _turns(event.get("num_turns")),
            f"${cost:.4f}" if (cost := as_float(event.get("total_cost_usd"))) is not None
            else None, _seconds(event.get("duration_ms")),
            f"{denials} permission denials" if denials else None])
        text = as_str(event.get("result"))
        if text is None or text.strip() == self._said:
            return [head]
        return [head, *block("  ", text)]

    # --- Gemini -----------------------------------------------------------------------------

    def _init(self, event: dict[str, Any]) -> Lines:
        """Claude's system/init, Gemini's init, Codex's thread.started."""
        model = as_str(event.get("model"))
        session = as_str(event.get("session_id")) or as_str(event.get("thread_id"))
        parts = [f"model {model}" if model else None, f"session {session}" if session else None]
        return ["[init] " + (", ".join(part for part in parts if part) or "started")]

    def _message(self, event: dict[str, Any]) -> Lines:
        content = event.get("content") if isinstance(event.get("content"), str) else ""
        if event.get("role") != "assistant":
            return block("user: ", content) if content else []
        if event.get("delta") is True:
            self._gemini_text += content
            return []
        return self._say(content) if content.strip() else []

    def _tool_use(self, event: dict[str, Any]) -> Lines:
        return [tool_line(as_str(first(event, "tool_name", "toolName", "name")),
                          first(event, "parameters", "args", "input"))]

    def _tool_result(self, event: dict[str, Any]) -> Lines:
        error = as_dict(event.get("error"))
        failed = bool(error) or event.get("status") == "error"
        return tool_output(as_str(error.get("message")) or _text_of(event.get("output")), failed)

    def _error(self, event: dict[str, Any]) -> Lines:
        label = "[warning]" if event.get("severity") == "warning" else "[error]"
        return [f"{label} {as_str(event.get('message')) or 'error'}"]

    def _gemini_result(self, event: dict[str, Any]) -> Lines:
        status = as_str(event.get("status"))
        message = as_str(as_dict(event.get("error")).get("message"))
        stats = as_dict(event.get("stats"))
        head = "success" if status == "success" else f"error: {message or f'status {status}'}"
        return ["[result] " + _joined([head, _seconds(first(stats, "duration_ms", "durationMs"))])]

    # --- Codex ------------------------------------------------------------------------------

    def _turn(self, event: dict[str, Any]) -> Lines:
        if event.get("type") == "turn.failed":
            error = event.get("error")
            return [f"[turn] failed: {as_str(as_dict(error).get('message')) or as_str(error)}"]
        usage = as_dict(event.get("usage"))
        tokens = (f"{as_int(usage.get('input_tokens')) or 0} in / "
                  f"{as_int(usage.get('output_tokens')) or 0} out") if usage else None
        return ["[turn] " + _joined(["completed", tokens])]

    def _item(self, event: dict[str, Any]) -> Lines:
        item = as_dict(event.get("item"))
        kind, key = item.get("type"), str(item.get("id"))
        done = event.get("type") == "item.completed"
        if kind in TOOL_ITEMS:
            if event.get("type") == "item.updated":
                return []
            call = [] if key in self._codex_started else [tool_line(*tool_call(item))]
            self._codex_started.add(key)
            return call + (_codex_output(item) if done else [])
        if not done:
            return []
        if kind == "agent_message" and as_str(item.get("text")):
            return self._say(item["text"])
        if kind == "reasoning" and as_str(item.get("text")):
            return block("thinking: ", item["text"], THINKING_LINES)
        if kind == "error":
            return self._error(item)
        return []


def _codex_output(item: dict[str, Any]) -> Lines:
    exit_code = as_int(item.get("exit_code"))
    error = as_str(as_dict(item.get("error")).get("message"))
    failed = item.get("status") == "failed" or bool(exit_code) or error is not None
    text = error or as_str(item.get("aggregated_output")) \
        or _text_of(as_dict(item.get("result")).get("content")) or as_str(item.get("status"))
    return tool_output((text or "") + (f"\n(exit {exit_code})" if exit_code else ""), failed)


def _encode(lines: Lines) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8", "replace")

