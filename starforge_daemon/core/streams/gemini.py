"""Gemini CLI's ``--output-format stream-json`` (read from the 0.61 bundle).

``init`` (session_id, model), ``message`` (role user|assistant, content, delta: assistant text comes
in pieces), ``tool_use`` (tool_name, tool_id, parameters), ``tool_result`` (tool_id, status,
output, error), ``error`` (severity warning|error, message) and one ``result`` (status
success|error, error {type, message}, stats). The stats are the session's so far: input_tokens is
the whole prompt, cached the part read from cache, input the rest. There is no turn count, so a
turn is counted each time the model starts answering (after the prompt or after tool results).
"""

from __future__ import annotations

from typing import Any

from starforge_daemon.core.streams import (
    FAILURE_CHARS,
    StreamAdapter,
    Summary,
    Tokens,
    as_dict,
    as_str,
    count,
    cut_utf8,
    first,
    is_rate_limit,
    one_line,
    status_in,
)


def stats_tokens(stats: dict[str, Any]) -> Tokens:
    prompt = count(first(stats, "input_tokens", "inputTokens", "prompt_tokens", "promptTokens"))
    cached = count(first(stats, "cached", "cached_tokens", "cachedTokens"))
    fresh = first(stats, "input", "uncached_input_tokens")
    return Tokens(count(fresh) if fresh is not None else max(prompt - cached, 0),
                  count(first(stats, "output_tokens", "outputTokens", "candidates_tokens")),
                  cached, 0)


class GeminiAdapter(StreamAdapter):
    kind = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self._answering = False  # the model is mid-answer: more text or tool calls belong to it
        self._text = ""
        self._answer: str | None = None
        self._error: str | None = None
        self._result: dict[str, Any] | None = None

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "init":
            self.session_id = as_str(event.get("session_id")) or self.session_id
            self.model = as_str(event.get("model")) or self.model
            self.thinking()
        elif kind == "message" and event.get("role") == "assistant":
            self._answer_starts()
            content = event.get("content")
            content = content if isinstance(content, str) else ""
            self._text = self._text + content if event.get("delta") is True else content
            self.thinking()
            self.said(self._text)
            if self._text.strip():
                self._answer = self._text
        elif kind == "message":
            self._answering = False
        elif kind == "tool_use":
            self._answer_starts()
            self.using(as_str(first(event, "tool_name", "toolName", "name")),
                       first(event, "parameters", "args", "input"))
        elif kind == "tool_result":
            self._answering = False
            self.thinking()
        elif kind == "error" and event.get("severity") != "warning":
            self._error = as_str(event.get("message")) or "error"
        elif kind == "result":
            self._result = event
            self.usage = stats_tokens(as_dict(event.get("stats")))
            self.phase, self.tool, self.tool_input = "finishing", None, None

    def _answer_starts(self) -> None:
        if not self._answering:
            self._answering, self._text = True, ""
            self.turns += 1

    def summary(self) -> Summary:
        result = self._result
        if result is None:
            return self.make_summary(turns=self.turns or None, result_text=cut_utf8(self._answer))
        status = as_str(result.get("status"))
        error = as_dict(result.get("error"))
        failure = None
        if status != "success":
            failure = one_line(as_str(error.get("message")) or self._error or f"status {status}",
                               FAILURE_CHARS)
        error_type = as_str(error.get("type"))
        return self.make_summary(
            got_result=True, failure=failure,
            rate_limited=failure is not None and (status_in(failure) in (429, 529)
                                                  or is_rate_limit(failure, error_type)),
            turns=self.turns, result_text=cut_utf8(self._answer),
            api_error_status=status_in(failure), terminal_reason=error_type, subtype=status)
