"""Claude Code's ``--output-format stream-json --verbose`` (seen from 2.1.x).

Shapes, from recordings of the real CLI (tests/data/claude):

- ``system/init`` carries session_id and model; other system subtypes (api_retry, task_*) are noise.
- ``assistant`` comes once per content block, repeating the message's usage each time: usage is
  kept per message id (the latest wins) and summed over ids.
- ``user`` with a tool_result ends the tool call.
- ``result`` may come more than once (a background command makes claude start another turn after
  its first result); the last one counts. Its ``usage`` and ``num_turns`` cover that result only,
  while ``modelUsage`` and ``total_cost_usd`` cover the whole session, so totals prefer modelUsage.
- ``api_error_status: 400`` arrives with subtype "success" and is_error true: a failure is judged
  on all three.
"""

from __future__ import annotations

from typing import Any

from starforge_daemon.core.streams import (
    StreamAdapter,
    Summary,
    Tokens,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    count,
    cut_utf8,
    epoch_seconds,
    first_line,
    is_rate_limit,
    one_line,
)
from starforge_daemon.core.streams.prices import estimated_cost

RATE_LIMIT_STATUSES = (429, 529)


def anthropic_tokens(usage: Any) -> Tokens:
    usage = as_dict(usage)
    return Tokens(count(usage.get("input_tokens")), count(usage.get("output_tokens")),
                  count(usage.get("cache_read_input_tokens")),
                  count(usage.get("cache_creation_input_tokens")))


def model_usage_tokens(model_usage: Any) -> Tokens:
    """The session's tokens from a result's modelUsage, summed over models."""
    total = Tokens()
    for usage in as_dict(model_usage).values():
        usage = as_dict(usage)
        total += Tokens(count(usage.get("inputTokens")), count(usage.get("outputTokens")),
                        count(usage.get("cacheReadInputTokens")),
                        count(usage.get("cacheCreationInputTokens")))
    return total


def failure_of(result: dict[str, Any]) -> str | None:
    """None when the result says success in every way it can; else a short reason."""
    status = as_int(result.get("api_error_status"))
    subtype = as_str(result.get("subtype"))
    reason = as_str(result.get("terminal_reason"))
    reason = reason if reason != "completed" else None
    text = first_line(as_str(result.get("result")))
    if status is not None:
        return one_line(f"api error {status}" + (f": {text}" if text else ""), 300)
    if subtype not in (None, "success"):
        return f"{subtype} ({reason})" if reason else subtype
    if result.get("is_error") is True:
        return f"error ({reason})" if reason else (f"error: {text}" if text else "error")
    return None


class ClaudeAdapter(StreamAdapter):
    kind = "claude"

    def __init__(self) -> None:
        super().__init__()
        self._since_result: dict[str, Tokens] = {}  # usage per assistant message id since a result
        self._pending = Tokens()  # their sum
        self._anonymous = 0
        self._result: dict[str, Any] | None = None

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.session_id is None:
            self.session_id = as_str(event.get("session_id"))
        if kind == "system" and event.get("subtype") == "init":
            self.session_id = as_str(event.get("session_id")) or self.session_id
            self.model = as_str(event.get("model")) or self.model
            self.thinking()
        elif kind == "assistant":
            self._assistant(as_dict(event.get("message")))
        elif kind == "user":
            if any(as_dict(block).get("type") == "tool_result"
                   for block in as_list(as_dict(event.get("message")).get("content"))):
                self.thinking()
        elif kind == "rate_limit_event":
            self._rate_limit(event)
        elif kind == "result":
            self._finish(event)

    def _assistant(self, message: dict[str, Any]) -> None:
        key = as_str(message.get("id"))
        if key is None:
            self._anonymous += 1
            key = f"#{self._anonymous}"
        if "usage" in message or key not in self._since_result:
            tokens = anthropic_tokens(message.get("usage"))
            self._pending = self._pending - self._since_result.get(key, Tokens()) + tokens
            self._since_result[key] = tokens
        model = as_str(message.get("model"))
        if self.model is None and model and not model.startswith("<"):  # not "<synthetic>"
            self.model = model
        for block in as_list(message.get("content")):
            block = as_dict(block)
            if block.get("type") == "tool_use":
                self.using(as_str(block.get("name")), block.get("input"))
            elif block.get("type") in ("text", "thinking"):
                self.thinking()
                self.said(block.get("text"))

    def _rate_limit(self, event: dict[str, Any]) -> None:
        """A reset time counts only while the limit bites: a status of "rejected", or no status
        at all. "allowed_warning" leaves the picture as it was; "allowed" clears it."""
        infos = [event, *(value for value in event.values() if isinstance(value, dict))]
        for info in infos:
            status = info.get("status")
            if status == "allowed":
                self.rate_limit_until = None
            elif status in (None, "rejected"):
                until = epoch_seconds(info.get("resetsAt", info.get("resets_at")))
                if until is not None:
                    self.rate_limit_until = until

    def _finish(self, result: dict[str, Any]) -> None:
        before = self.usage
        session = model_usage_tokens(result.get("modelUsage"))
        this_result = anthropic_tokens(result.get("usage"))
        if session.nonzero():
            self.usage = session
        elif this_result.nonzero():
            self.usage = before + this_result
        else:
            self.usage = before + self._pending
        turns = as_int(result.get("num_turns"))
        self.turns += turns if turns is not None and turns >= 0 else len(self._since_result)
        self._since_result.clear()
        self._pending = Tokens()
        self.cost_usd = as_float(result.get("total_cost_usd"))
        if self.cost_usd is None and self._result is not None:
            self.cost_usd = as_float(self._result.get("total_cost_usd"))
        self.session_id = as_str(result.get("session_id")) or self.session_id
        self._result = result
        self.phase, self.tool, self.tool_input = "finishing", None, None
        self.said(result.get("result"))

    def totals(self) -> tuple[Tokens, int]:
        return self.usage + self._pending, self.turns + len(self._since_result)

    def live_cost(self) -> float | None:
        """The reported cost, plus an estimate for the tokens used since the last result."""
        pending = self._pending
        if not pending.nonzero():
            return self.cost_usd
        estimate = estimated_cost(self.model, pending)
        return self.cost_usd if estimate is None else (self.cost_usd or 0.0) + estimate

    def summary(self) -> Summary:
        result = self._result
        turns = self.totals()[1]
        if result is None:
            return self.make_summary(turns=turns if turns else None, cost_usd=self.live_cost())
        failure = failure_of(result)
        status = as_int(result.get("api_error_status"))
        denials = result.get("permission_denials")
        return self.make_summary(
            got_result=True, failure=failure,
            rate_limited=failure is not None and (
                status in RATE_LIMIT_STATUSES
                or is_rate_limit(as_str(result.get("terminal_reason")),
                                 as_str(result.get("api_error_type")), as_str(result.get("result")))),
            result_text=cut_utf8(as_str(result.get("result"))),
            permission_denials=len(denials) if isinstance(denials, list) else count(denials),
            api_error_status=status, terminal_reason=as_str(result.get("terminal_reason")),
            subtype=as_str(result.get("subtype")))
