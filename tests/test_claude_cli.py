"""The daemon running the real Claude Code CLI (``claude --print``) against a fake Messages API.

Nothing leaves the machine: claude talks only to the fake on 127.0.0.1 (see
tests/fake_messages_api.py for the environment that makes it so), with a private HOME.
"""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, wait_until
from fake_messages_api import (
    FakeMessagesAPI,
    Turn,
    fake_api,  # noqa: F401 - the fixture, until conftest registers it
)

CLAUDE_FLAGS = "--print --permission-mode bypassPermissions --output-format stream-json --verbose"


class ClaudeProject:
    """A project whose daemon runs the real claude against the fake API."""

    def __init__(self, project: Project, api: FakeMessagesAPI) -> None:
        self.project = project
        self.api = api

    def start(self, **settings: Any) -> None:
        command = f"{shlex.quote(str(self.api.claude))} {CLAUDE_FLAGS} {{prompt}}"
        self.project.write_env(AGENT_COMMAND=command, **settings)
        # the daemon hands its own environment to its agents
        self.project.cli("daemon", "start", env=self.api.env)

    def stream(self, trigger: str) -> list[dict[str, Any]]:
        """The stream-json lines claude wrote into the run's log."""
        result = self.project.result(trigger)
        log = Path(result["log"])
        assert log == self.project.paths.logs / f"{result['run_id']}.log"
        lines = []
        for line in log.read_text().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                lines.append(value)
        return lines


@pytest.fixture
def claude(fake_api: FakeMessagesAPI, project: Project) -> Iterator[ClaudeProject]:  # noqa: F811
    # set up after fake_api, so torn down (daemon stopped) before the fake API goes away
    yield ClaudeProject(project, fake_api)


def find_trigger(text: str, agent: str) -> dict[str, Any] | None:
    """The trigger object quoted somewhere in ``text``."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char != "{":
            continue
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict) and value.get("to_agent") == agent:
            return value
    return None


def test_claude_run_succeeds_and_its_stream_is_logged(claude: ClaudeProject) -> None:
    claude.api.script(Turn.text("Nothing to hand on. All done."))
    claude.start()
    claude.project.trigger("hello.trigger", "junior-dev-a", action="say_hello")
    assert claude.project.wait_archived(1) == {"hello.trigger": "done"}
    result = claude.project.result("hello.trigger")
    assert (result["outcome"], result["exit_code"]) == ("succeeded", 0)

    stream = claude.stream("hello.trigger")
    init = stream[0]
    assert (init["type"], init["subtype"]) == ("system", "init")
    assert init["cwd"] == str(claude.project.root)
    version = init["claude_code_version"]  # .ci/install-claude pins CLAUDE_VERSION
    assert init["permissionMode"] == "bypassPermissions"
    final = stream[-1]
    assert final["type"] == "result"
    assert (final["subtype"], final["is_error"]) == ("success", False)
    assert final["result"] == "Nothing to hand on. All done."

    main = claude.api.main_requests()
    assert len(main) == 1
    assert main[0].headers["x-api-key"] == "test-key"
    assert main[0].headers["user-agent"].startswith(f"claude-cli/{version} ")
    # the quiet environment leaves claude nothing else to ask for
    assert claude.api.requests == main


def test_claude_bash_tool_writes_a_file_in_the_project(claude: ClaudeProject) -> None:
    tool = Turn.bash('printf %s "$STARFORGE_RUN_ID" > claude-was-here.txt',
                     "Leave a marker in the project")
    claude.api.script(tool, Turn.text("Marker written."))
    claude.start()
    claude.project.trigger("work.trigger", "junior-dev-b", action="implement_ticket",
                           context={"ticket": 7})
    assert claude.project.wait_archived(1) == {"work.trigger": "done"}
    result = claude.project.result("work.trigger")
    assert result["outcome"] == "succeeded"

    # the command ran in the project root, with the run's environment
    marker = claude.project.root / "claude-was-here.txt"
    assert marker.read_text() == result["run_id"]
    _, second = claude.api.main_requests()
    [tool_result] = second.tool_results()
    assert tool_result["tool_use_id"] == tool.blocks[-1]["id"]
    assert not tool_result.get("is_error")
    assert claude.api.remaining() == 0

    stream = claude.stream("work.trigger")
    uses = [block for line in stream if line["type"] == "assistant"
            for block in line["message"]["content"] if block["type"] == "tool_use"]
    assert [(u["name"], u["input"]["command"]) for u in uses] == [
        ("Bash", tool.blocks[-1]["input"]["command"])]
    assert stream[-1]["type"] == "result" and stream[-1]["result"] == "Marker written."
    assert stream[-1]["num_turns"] == 2


def test_claude_receives_the_prompt_the_daemon_rendered(claude: ClaudeProject) -> None:
    claude.api.script(Turn.text("Understood."))
    claude.start()
    claude.project.trigger("handoff.trigger", "junior-dev-a", from_agent="orchestrator",
                           action="implement_ticket", message="marker-5f3a: fix the parser",
                           context={"ticket": 52, "files": ["a.py"]}, extra_field="kept")
    assert claude.project.wait_archived(1) == {"handoff.trigger": "done"}

    [request] = claude.api.main_requests()
    first_user = request.body["messages"][0]
    assert first_user["role"] == "user"
    prompt = "\n".join(request.texts())
    assert "junior-dev-a" in prompt
    trigger = find_trigger(prompt, "junior-dev-a")
    assert trigger is not None, f"no trigger in the prompt:\n{prompt}"
    assert trigger["from_agent"] == "orchestrator"
    assert trigger["action"] == "implement_ticket"
    assert trigger["message"] == "marker-5f3a: fix the parser"
    assert trigger["context"] == {"ticket": 52, "files": ["a.py"]}
    assert trigger["extra_field"] == "kept"
    # how to hand work on: the project folder, and the command
    assert "The project is at $STARFORGE_PROJECT_DIR" in prompt
    assert ('starforge --project-dir "$STARFORGE_PROJECT_DIR" trigger AGENT --from junior-dev-a'
            in prompt)


def test_claude_api_error_fails_the_run(claude: ClaudeProject) -> None:
    # claude retries a 400 a few times with fewer beta features; every try gets the error
    claude.api.fallback = Turn.error(400, message="fake invalid request")
    claude.start()
    claude.project.trigger("doomed.trigger", "junior-dev-a")
    assert claude.project.wait_archived(1) == {"doomed.trigger": "failed"}
    result = claude.project.result("doomed.trigger")
    assert (result["outcome"], result["exit_code"]) == ("failed", 1)
    final = claude.stream("doomed.trigger")[-1]
    assert final["type"] == "result" and final["is_error"] is True
    assert final["api_error_status"] == 400
    assert final["result"] == "API Error: 400 fake invalid request"
    assert claude.api.main_requests()


def test_stalled_answer_holds_claude_until_released(claude: ClaudeProject) -> None:
    claude.api.script(Turn.stall(then=Turn.text("Late but done.")))
    claude.start()
    claude.project.trigger("slow.trigger", "junior-dev-a")
    wait_until(claude.api.main_requests, 15, "claude's first request")
    # claude waits on the silent stream: its run is still going
    assert claude.project.all_archived() == {}
    assert claude.project.slots()["junior-dev-a"]["status"] == "busy"
    claude.api.release()
    assert claude.project.wait_archived(1) == {"slow.trigger": "done"}
    assert claude.stream("slow.trigger")[-1]["result"] == "Late but done."
    assert len(claude.api.main_requests()) == 1


def test_fake_api_answers_what_claude_does_not_ask_here() -> None:
    """The fake's non-streaming, count_tokens, error and unknown-path answers (claude 2.1.330
    uses none of them in these tests)."""
    api = FakeMessagesAPI()
    api.usage = {"input_tokens": 7, "output_tokens": 3}
    api.script(Turn.tool_use("Read", {"file_path": "/x"}, text="Reading."), Turn.error(529))
    api.start()
    try:
        def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(
                api.base_url + path, data=json.dumps(body).encode(), method="POST",
                headers={"content-type": "application/json", "x-api-key": "k"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        tools = [{"name": "Read", "input_schema": {"type": "object"}}]
        status, message = post("/v1/messages", {"model": "m", "stream": False, "tools": tools,
                                                "max_tokens": 10, "messages": []})
        assert status == 200 and message["stop_reason"] == "tool_use"
        assert [block["type"] for block in message["content"]] == ["text", "tool_use"]
        assert message["usage"] == {"input_tokens": 7, "output_tokens": 3}
        status, side = post("/v1/messages", {"model": "haiku", "max_tokens": 1, "messages": []})
        assert status == 200 and side["content"] == [{"type": "text", "text": "ok"}]
        assert post("/v1/messages/count_tokens", {"messages": []})[1]["input_tokens"] > 0
        status, error = post("/v1/messages", {"model": "m", "tools": tools, "messages": []})
        assert (status, error["error"]["type"]) == (529, "overloaded_error")
        assert post("/v1/elsewhere", {})[0] == 404
        assert [r.kind for r in api.requests] == ["main", "side", "count_tokens", "main", "other"]
        assert api.requests[0].headers["x-api-key"] == "k"
        assert api.remaining() == 0
    finally:
        api.stop()
