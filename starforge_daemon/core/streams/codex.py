"""Codex CLI's ``codex exec --json``.

``thread.started`` (thread_id), ``turn.started``, ``turn.completed`` (usage of that turn, where
input_tokens includes cached_input_tokens), ``turn.failed`` (error.message), a top-level ``error``
(message; also sent for retries, so it is a failure only when no turn completes after it), and
``item.started`` / ``item.updated`` / ``item.completed`` whose item is an agent_message, reasoning,
command_execution, file_change, mcp_tool_call, web_search, todo_list or error. Codex reports no
price, so cost stays None.
"""

from __future__ import annotations

from typing import Any

from starforge_daemon.core.streams import (
    FAILURE_CHARS,
    StreamAdapter,
    Summary,
    Tokens,
    as_dict,
    as_list,
    as_str,
    count,
    cut_utf8,
    is_rate_limit,
    one_line,
    status_in,
)

TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search")


def tool_call(item: dict[str, Any]) -> tuple[str, Any]:
    """The tool name and the input worth showing for a tool item."""
    kind = item.get("type")
    if kind == "command_execution":
        return "command", item.get("command")
    if kind == "file_change":
        paths = [as_str(as_dict(change).get("path")) for change in as_list(item.get("changes"))]
        return "file_change", " ".join(path for path in paths if path) or None
    if kind == "mcp_tool_call":
        name = ".".join(part for part in (as_str(item.get("server")), as_str(item.get("tool")))
                        if part)
        return name or "mcp_tool_call", item.get("arguments")
    return str(kind), item.get("query")


class CodexAdapter(StreamAdapter):
    kind = "codex"

    def __init__(self) -> None:
        super().__init__()
        self._tool_item: str | None = None
        self._answer: str | None = None
        self._last_turn: str | None = None  # "turn.completed" or "turn.failed"
        self._failure: str | None = None

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "thread.started":
            self.session_id = as_str(event.get("thread_id")) or self.session_id
            self.thinking()
        elif kind == "turn.started":
            self.thinking()
        elif kind == "turn.completed":
            usage = as_dict(event.get("usage"))
            cached = count(usage.get("cached_input_tokens"))
            self.usage += Tokens(max(count(usage.get("input_tokens")) - cached, 0),
                                 count(usage.get("output_tokens")), cached, 0)
            self.turns += 1
            self._end_turn(kind, None)
        elif kind == "turn.failed":
            error = event.get("error")
            message = as_str(as_dict(error).get("message")) or as_str(error) or "turn failed"
            self._end_turn(kind, message)
        elif kind == "error":
            self._failure = as_str(event.get("message")) or "error"
        elif kind in ("item.started", "item.updated", "item.completed"):
            self._item(kind, as_dict(event.get("item")))

    def _end_turn(self, kind: str, failure: str | None) -> None:
        self._last_turn, self._failure = kind, failure
        self.phase, self.tool, self.tool_input = "finishing", None, None
        self._tool_item = None

    def _item(self, kind: str, item: dict[str, Any]) -> None:
        item_type = item.get("type")
        if item_type == "agent_message":
            self.thinking()
            self.said(item.get("text"))
            if kind == "item.completed" and as_str(item.get("text")):
                self._answer = item["text"]
        elif item_type in TOOL_ITEMS:
            if kind == "item.completed":
                if self._tool_item in (None, item.get("id")):
                    self.thinking()
                    self._tool_item = None
            else:
                self.using(*tool_call(item))
                self._tool_item = item.get("id")
        elif item_type == "reasoning" and self.phase != "tool":
            self.thinking()

    def summary(self) -> Summary:
        failure = one_line(self._failure, FAILURE_CHARS) if self._failure else None
        return self.make_summary(
            got_result=self._last_turn is not None, failure=failure,
            rate_limited=failure is not None and (status_in(failure) in (429, 529)
                                                  or is_rate_limit(failure)),
            turns=self.turns if self._last_turn or self.turns else None,
            result_text=cut_utf8(self._answer), api_error_status=status_in(failure),
            subtype=self._last_turn)
