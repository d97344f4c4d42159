"""The stream adapters against recorded claude output and documented codex / gemini shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starforge_daemon.core.streams import (
    MAX_LINE_BYTES,
    Progress,
    Summary,
    Tokens,
    adapter_kind,
    cut_utf8,
    epoch_seconds,
    new_adapter,
    summarise_input,
)
from starforge_daemon.core.streams.prices import estimated_cost

DATA = Path(__file__).resolve().parent / "data"
MANIFEST = json.loads((DATA / "claude" / "manifest.json").read_text())
SCENARIOS = MANIFEST["scenarios"]


def run(kind: str, name: str) -> tuple[list[Progress], Summary]:
    adapter = new_adapter(kind)
    assert adapter is not None and adapter.kind == kind and adapter.expects_result
    seen = []
    for line in (DATA / kind / f"{name}.jsonl").read_bytes().splitlines(keepends=True):
        adapter.feed(line)
        seen.append(adapter.progress())
    return seen, adapter.summary()


def fixture_lines(kind: str, name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / kind / f"{name}.jsonl").read_text().splitlines()
            if line.startswith("{")]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_claude_fixture_reads_cleanly_and_agrees_with_the_manifest(name: str) -> None:
    seen, summary = run("claude", name)
    lines = fixture_lines("claude", name)
    assert len(lines) == len(SCENARIOS[name]["lines"])
    assert seen[-1].events == len(lines) and seen[-1].skipped == 0
    results = [line for line in lines if line.get("type") == "result"]
    assert summary.got_result == bool(results)
    assert summary.session_id == lines[0]["session_id"]
    assert summary.model == lines[0]["model"] == "claude-opus-5-5"
    if results:
        last = results[-1]
        assert seen[-1].phase == "finishing"
        assert summary.cost_usd == last["total_cost_usd"]
        assert summary.subtype == last["subtype"] and summary.terminal_reason == last["terminal_reason"]
        succeeded = not last["is_error"] and last["subtype"] == "success"
        assert (summary.failure is None) == succeeded
        assert SCENARIOS[name]["exit_code"] == (0 if succeeded or SCENARIOS[name]["signal"] else 1)


def test_text_answer_tokens_are_the_fake_apis_usage() -> None:
    answered = MANIFEST["usage_answered"]
    usage = fixture_lines("claude", "text")[-1]["usage"]
    assert {key: usage[key] for key in answered} == answered  # the fixture says what we assume
    seen, summary = run("claude", "text")
    assert (summary.tokens_in, summary.tokens_out) == (1234, 56)
    assert (summary.cache_creation_tokens, summary.cache_read_tokens) == (789, 4321)
    assert summary.turns == 1 and summary.result_text == "hi there" and summary.failure is None
    assert seen[1].last_text == "hi there" and seen[1].tokens_out == 1  # live, before the result
    assert summary.cost_usd == pytest.approx(0.0108652)


def test_bash_tool_is_seen_mid_stream_then_finishes() -> None:
    seen, summary = run("claude", "bash-tool")
    assert [p.phase for p in seen] == ["thinking", "tool", "thinking", "thinking", "finishing"]
    assert (seen[1].tool, seen[1].tool_input) == ("Bash", "touch made-by-claude")
    assert seen[2].tool is None and seen[2].tool_input is None
    assert seen[3].turns == 2 and seen[3].tokens_in == 2 * 1234  # two messages, usage once each
    assert (summary.turns, summary.tokens_in, summary.tokens_out) == (2, 2468, 112)
    assert summary.result_text == "done" and summary.failure is None


def test_live_cost_is_the_reported_cost_plus_an_estimate_since_the_last_result() -> None:
    seen, summary = run("claude", "background-bash")
    # mid-stream a message shows 1 output token; opus list prices
    one_turn = (1234 * 5 + 1 * 25 + 789 * 6.25 + 4321 * 0.5) / 1e6
    assert seen[1].cost_usd == pytest.approx(one_turn)  # before any result: the estimate
    first_result = next(p for p in seen if p.phase == "finishing")
    assert first_result.cost_usd == pytest.approx(0.0217304)  # then claude's own figure
    assert seen[-2].cost_usd == pytest.approx(0.0217304 + one_turn)  # a second turn on top
    assert seen[-1].cost_usd == summary.cost_usd == pytest.approx(0.0325956)
    assert estimated_cost("gpt-5", Tokens(1000, 1000)) is None  # no family: no guess


def test_background_bash_the_last_result_counts_for_the_whole_session() -> None:
    seen, summary = run("claude", "background-bash")
    assert [p.phase for p in seen].count("finishing") == 5  # the first result, its tail, the last
    assert seen[6].phase == "finishing" and seen[10].phase == "thinking"  # a second system/init
    assert summary.result_text == "the background task finished"
    assert summary.cost_usd == pytest.approx(0.0325956)  # cumulative: 0.0217304 + 0.0108652
    assert (summary.tokens_in, summary.tokens_out) == (2468 + 1234, 112 + 56)  # modelUsage
    assert summary.turns == 2 + 1 and summary.failure is None


def test_api_error_400_fails_though_its_subtype_says_success() -> None:
    _, summary = run("claude", "api-error-400")
    assert summary.subtype == "success" and summary.api_error_status == 400
    assert summary.failure == "api error 400: API Error: 400 fake invalid request"
    assert not summary.rate_limited


@pytest.mark.parametrize(("name", "status"), [("rate-limit-429", 429), ("overloaded-529", 529)])
def test_rate_limit_and_overload_are_rate_limited(name: str, status: int) -> None:
    _, summary = run("claude", name)
    assert summary.rate_limited and summary.api_error_status == status
    assert summary.failure is not None and summary.failure.startswith(f"api error {status}")


def test_overloaded_then_ok_is_a_success() -> None:
    _, summary = run("claude", "overloaded-then-ok")
    assert summary.failure is None and not summary.rate_limited and summary.result_text == "recovered"


@pytest.mark.parametrize(("name", "reason"), [("sigint-while-streaming", "aborted_streaming"),
                                              ("sigint-during-bash", "aborted_tools")])
def test_sigint_is_a_failure_by_claudes_own_account(name: str, reason: str) -> None:
    _, summary = run("claude", name)
    assert summary.got_result and summary.failure == f"error_during_execution ({reason})"
    assert not summary.rate_limited


def test_sigint_while_streaming_takes_tokens_from_model_usage() -> None:
    _, summary = run("claude", "sigint-while-streaming")
    assert (summary.tokens_in, summary.tokens_out, summary.turns) == (1234, 1, 2)


def test_sigterm_leaves_no_result_and_no_failure() -> None:
    seen, summary = run("claude", "sigterm-during-bash")
    assert not summary.got_result and summary.failure is None
    # no reported cost: the estimate at the opus list price (5 / 25 $ per million tokens)
    assert summary.cost_usd == pytest.approx((1234 * 5 + 1 * 25 + 789 * 6.25 + 4321 * 0.5) / 1e6)
    assert seen[1].tool_input == "touch started; sleep 30; touch finished"
    assert (summary.tokens_in, summary.tokens_out, summary.turns) == (1234, 1, 1)


def assistant_block(message_id: str, block: dict, output_tokens: int) -> bytes:
    usage = {"input_tokens": 10, "output_tokens": output_tokens, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 5}
    return json.dumps({"type": "assistant", "message": {"id": message_id, "content": [block],
                                                        "usage": usage}}).encode() + b"\n"


def test_usage_repeated_per_content_block_counts_once_per_message() -> None:
    adapter = new_adapter("claude")
    assert adapter is not None
    adapter.feed(assistant_block("m1", {"type": "thinking", "thinking": "hmm"}, 3))
    adapter.feed(assistant_block("m1", {"type": "text", "text": "first\n\nsecond line\n"}, 7))
    adapter.feed(assistant_block("m1", {"type": "tool_use", "name": "Read",
                                        "input": {"file_path": "/a/b.py"}}, 9))
    progress = adapter.progress()
    assert (progress.turns, progress.tokens_in, progress.tokens_out) == (1, 10, 9)
    assert (progress.cache_read_tokens, progress.cache_creation_tokens) == (100, 5)
    assert (progress.phase, progress.tool, progress.tool_input) == ("tool", "Read", "/a/b.py")
    assert progress.last_text == "second line"
    adapter.feed(assistant_block("m2", {"type": "text", "text": "ok"}, 2))
    assert (adapter.progress().turns, adapter.progress().tokens_out) == (2, 11)
    summary = adapter.summary()
    assert not summary.got_result and summary.turns == 2 and summary.tokens_in == 20


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini"])
def test_malformed_lines_are_counted_and_never_raise(kind: str) -> None:
    adapter = new_adapter(kind)
    assert adapter is not None
    huge = b'{"type":"result","result":"' + b"x" * (2 * MAX_LINE_BYTES) + b'"}'
    for line in (b"{not json", b"[1,2]", huge, b"plain text\n", b"\xff\xfe\n", b"null",
                 b"[" * 100_000, b'"a string"'):
        adapter.feed(line)
    adapter.feed(b"\n")  # a blank line is nothing at all
    adapter.feed(b'{"type":"result","subtype":7,"usage":"lots","modelUsage":[1],"stats":3,'
                 b'"message":{"content":"not a list"},"item":null,"error":5}')
    adapter.feed(b'{"type":"assistant","message":{"content":[1,null,{"type":"tool_use"}]}}')
    progress = adapter.progress()
    assert progress.skipped == 8 and progress.events == 2
    assert isinstance(adapter.summary(), Summary)


def test_rate_limit_event_sets_the_reset_only_when_it_bites() -> None:
    adapter = new_adapter("claude")
    assert adapter is not None

    def event(info: dict, nested: bool = True) -> bytes:
        body = {"type": "rate_limit_event", **({"rate_limit_info": info} if nested else info)}
        return json.dumps(body).encode()

    adapter.feed(event({"status": "allowed_warning", "resetsAt": 1771390800}))
    assert adapter.progress().rate_limit_until is None
    adapter.feed(event({"status": "rejected", "resetsAt": 1771390800}))
    assert adapter.progress().rate_limit_until == 1771390800
    adapter.feed(event({"status": "allowed", "resetsAt": 1771390800}))
    assert adapter.progress().rate_limit_until is None
    adapter.feed(event({"resetsAt": 1771390800123}, nested=False))
    assert adapter.progress().rate_limit_until == pytest.approx(1771390800.123)
    adapter.feed(event({"status": "rejected", "resetsAt": "2026-02-18T05:00:00Z"}))
    assert adapter.progress().rate_limit_until == 1771390800


def test_codex_command_then_answer() -> None:
    seen, summary = run("codex", "command-then-answer")
    assert (seen[3].phase, seen[3].tool, seen[3].tool_input) == ("tool", "command", "bash -lc ls")
    assert seen[4].phase == "thinking" and seen[-1].phase == "finishing"
    assert summary.got_result and summary.failure is None and summary.cost_usd is None
    assert summary.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert (summary.tokens_in, summary.cache_read_tokens, summary.tokens_out) == (315, 24448, 122)
    assert summary.result_text == "The repository holds:\n- README.md\n- src"
    assert seen[-1].last_text == "- src" and summary.turns == 1


def test_codex_tools_and_turns_add_up() -> None:
    seen, summary = run("codex", "file-change-and-mcp")
    assert (seen[2].tool, seen[2].tool_input) == ("docs.search", "retry policy")
    assert (seen[4].tool, seen[4].tool_input) == ("file_change", "src/retry.py tests/test_retry.py")
    assert (summary.turns, summary.tokens_in, summary.cache_read_tokens) == (2, 600 + 500, 400 + 1500)
    assert summary.tokens_out == 80 and summary.result_text == "And added a test."


def test_codex_turn_failed_on_429_is_rate_limited() -> None:
    _, summary = run("codex", "retries-then-rate-limited")
    assert summary.got_result and summary.subtype == "turn.failed"
    assert summary.failure == "exceeded retry limit, last status: 429 Too Many Requests"
    assert summary.rate_limited and summary.api_error_status == 429


def test_codex_error_then_a_completed_turn_is_no_failure() -> None:
    seen, summary = run("codex", "retry-then-answer-with-junk")
    assert seen[-1].skipped == 1 and seen[-1].events == 6
    assert summary.failure is None and summary.result_text == "All tests pass."
    adapter = new_adapter("codex")
    assert adapter is not None
    adapter.feed(b'{"type":"error","message":"stream error: 401 Unauthorized"}')
    assert adapter.summary().failure == "stream error: 401 Unauthorized"
    assert not adapter.summary().got_result


def test_gemini_tool_then_answer() -> None:
    seen, summary = run("gemini", "tool-then-answer")
    assert (seen[4].phase, seen[4].tool, seen[4].tool_input) == (
        "tool", "run_shell_command", "ls src | wc -l")
    assert seen[3].last_text == "I'll list them." and seen[5].phase == "thinking"
    assert summary.got_result and summary.failure is None and summary.model == "gemini-2.5-pro"
    assert summary.result_text == "There are 7 files in src." and summary.turns == 2
    assert (summary.tokens_in, summary.cache_read_tokens, summary.tokens_out) == (2900, 6000, 220)


def test_gemini_quota_error_is_rate_limited() -> None:
    _, summary = run("gemini", "quota-exhausted")
    assert summary.got_result and summary.subtype == "error" and summary.rate_limited
    assert summary.terminal_reason == "TerminalQuotaError" and summary.api_error_status == 429
    assert summary.failure is not None and "exhausted your capacity" in summary.failure


def test_gemini_error_result_without_error_takes_the_last_error_event() -> None:
    seen, summary = run("gemini", "empty-response-with-junk")
    assert seen[-1].skipped == 1 and seen[3].tool_input == "README.md"
    assert summary.failure == "Model stream ended with an empty response."
    assert not summary.rate_limited
    assert (summary.tokens_in, summary.tokens_out) == (3000, 100)  # camelCase stats


def test_adapter_kind_and_new_adapter() -> None:
    assert adapter_kind("auto", "/usr/bin/claude") == "claude"
    assert adapter_kind("auto", "codex") == "codex" and adapter_kind("auto", "gemini") == "gemini"
    assert adapter_kind("auto", "python3") == "text"
    assert adapter_kind("auto", "claude-code") == "text"
    assert adapter_kind("gemini", "/usr/bin/claude") == "gemini"
    assert new_adapter("text") is None
    fresh = new_adapter("gemini")
    assert fresh is not None and fresh.progress().phase == "starting"


def test_small_helpers() -> None:
    assert summarise_input({"command": "ls\n  -la"}) == "ls -la"
    assert summarise_input({"b": [1, 2]}) == '{"b":[1,2]}'
    assert len(summarise_input({"command": "x" * 500}) or "") == 120
    assert cut_utf8("é" * 2000) == "é" * 1024
    assert cut_utf8("a" + "é" * 2000) == "a" + "é" * 1023  # never half a character
    assert epoch_seconds("not a time") is None and epoch_seconds(True) is None
