"""Re-record the stream-json fixtures in this folder from the real ``claude`` and the fake API.

    python3 tests/data/claude/record.py

Each scenario runs ``claude --print --permission-mode bypassPermissions --output-format
stream-json --verbose PROMPT`` in a fresh temporary project against the fake Messages API
(tests/fake_messages_api.py), writes claude's stdout to ``<name>.jsonl`` and what happened to
``manifest.json``. Temporary paths are replaced by ``/project`` (the working directory) and
``/home/claude`` (the private HOME) so the files do not change for no reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/

from fake_messages_api import FakeMessagesAPI, Turn  # noqa: E402

#: distinctive token counts, so cost and token parsers have something to check
USAGE = {"input_tokens": 1234, "output_tokens": 56, "cache_creation_input_tokens": 789,
         "cache_read_input_tokens": 4321}


@dataclass
class Scenario:
    name: str
    about: str
    script: list[Turn] = field(default_factory=list)
    fallback: Turn | None = None
    env: dict[str, str] = field(default_factory=dict)
    prompt: str = "say hi"
    #: send this signal once ``ready`` says so
    signal: int | None = None
    ready: Callable[[FakeMessagesAPI, Path], bool] | None = None


def bash_started(api: FakeMessagesAPI, work: Path) -> bool:
    return (work / "started").exists()


def stalled(api: FakeMessagesAPI, work: Path) -> bool:
    return bool(api.main_requests())


SLOW_BASH = "touch started; sleep 30; touch finished"

SCENARIOS = [
    Scenario("text", "a plain text answer; exit 0", [Turn.text("hi there")]),
    Scenario("bash-tool", "a Bash tool call (touch made-by-claude), then a text answer; exit 0",
             [Turn.bash("touch made-by-claude", "Create a marker file"), Turn.text("done")]),
    Scenario("background-bash", "a Bash tool call with run_in_background (sleep 2), then text: "
             "claude prints a result, waits for the task, then starts another turn (a second "
             "system/init, assistant and result) before it exits 0",
             [Turn.tool_use("Bash", {"command": "sleep 2", "description": "Wait in the background",
                                     "run_in_background": True}),
              Turn.text("started it"), Turn.text("the background task finished")]),
    Scenario("api-error-400", "every request answered 400 invalid_request_error; claude tries "
             "6 times (dropping beta features), then exit 1",
             fallback=Turn.error(400, message="fake invalid request")),
    Scenario("rate-limit-429", "every request answered 429 rate_limit_error; "
             "CLAUDE_CODE_MAX_RETRIES=2: 3 requests with api_retry lines, then exit 1",
             fallback=Turn.error(429, message="fake rate limit"),
             env={"CLAUDE_CODE_MAX_RETRIES": "2"}),
    Scenario("overloaded-529", "every request answered 529 overloaded_error; "
             "CLAUDE_CODE_MAX_RETRIES=2: 3 requests with api_retry lines, then exit 1",
             fallback=Turn.error(529, message="Overloaded"),
             env={"CLAUDE_CODE_MAX_RETRIES": "2"}),
    Scenario("overloaded-then-ok", "one 529, then a text answer: an api_retry line, exit 0",
             [Turn.error(529, message="Overloaded"), Turn.text("recovered")]),
    Scenario("sigint-while-streaming", "SIGINT while the API stream is stalled: claude aborts "
             "the request, prints a result with is_error, exits 0",
             [Turn.stall()], signal=signal.SIGINT, ready=stalled),
    Scenario("sigint-during-bash", "SIGINT while a Bash tool command runs: claude kills the "
             "command, prints a result with is_error, exits 0",
             [Turn.bash(SLOW_BASH, "Sleep")], signal=signal.SIGINT, ready=bash_started),
    Scenario("sigterm-during-bash", "SIGTERM while a Bash tool command runs: claude kills the "
             "command and exits 143 without a result line",
             [Turn.bash(SLOW_BASH, "Sleep")], signal=signal.SIGTERM, ready=bash_started),
]


def record(scenario: Scenario, base: Path) -> dict[str, object]:
    work, home = base / "project", base / "home"
    work.mkdir()
    home.mkdir()
    api = FakeMessagesAPI()
    api.usage = dict(USAGE)
    api.script(*scenario.script)
    if scenario.fallback is not None:
        api.fallback = scenario.fallback
    api.start(home=home)
    argv = [str(api.claude), "--print", "--permission-mode", "bypassPermissions",
            "--output-format", "stream-json", "--verbose", scenario.prompt]
    try:
        process = subprocess.Popen(argv, cwd=work, env=api.full_env(**scenario.env),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
        if scenario.signal is not None and scenario.ready is not None:
            deadline = time.monotonic() + 30
            while not scenario.ready(api, work):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{scenario.name}: never got ready")
                time.sleep(0.02)
            time.sleep(0.3)
            process.send_signal(scenario.signal)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        api.release()
        api.stop()
    text = stdout.decode()
    # claude also names the project's folder under ~/.claude/projects with every character but
    # letters and digits turned into "-"
    for path, alias in ((str(work), "/project"), (str(home), "/home/claude"),
                        (re.sub(r"[^A-Za-z0-9]", "-", str(work)), "-project")):
        text = text.replace(path, alias)
    (HERE / f"{scenario.name}.jsonl").write_text(text)
    return {
        "about": scenario.about,
        "exit_code": process.returncode,
        "stderr": stderr.decode(),
        "signal": signal.Signals(scenario.signal).name if scenario.signal else None,
        "env": scenario.env,
        "requests": [{"kind": r.kind, "path": r.path,
                      "answer": (f"{r.turn.kind} {r.turn.status}" if r.turn else None)}
                     for r in api.requests],
        "lines": [json.loads(line).get("type") + (f"/{json.loads(line)['subtype']}"
                                                   if "subtype" in json.loads(line) else "")
                  for line in text.splitlines()],
    }


def main() -> None:
    manifest: dict[str, object] = {"claude_version": subprocess.run(
        ["claude", "--version"], capture_output=True, text=True).stdout.strip(),
        "usage_answered": USAGE, "scenarios": {}}
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="claude-record-") as base:
            manifest["scenarios"][scenario.name] = record(scenario, Path(base))  # type: ignore[index]
            print(scenario.name, manifest["scenarios"][scenario.name]["exit_code"])  # type: ignore[index]
    init = (HERE / "text.jsonl").read_text().splitlines()[0]
    assert json.loads(init)["subtype"] == "init"
    (HERE / "init.jsonl").write_text(init + "\n")
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.pop("STARFORGE_REQUIRE_CLAUDE", None)
    main()
