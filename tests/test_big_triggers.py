"""Triggers too big for one argument: the default command takes the prompt on stdin,
``{prompt_file}`` hands it over in a private file, and a command that would still put more than
Linux allows into one argument gets the trigger rejected, with the reason, before anything runs."""

from __future__ import annotations

import os
import shlex
import stat
import sys

from conftest import Project, wait_until
from fake_messages_api import (
    FakeMessagesAPI,
    Turn,
    fake_api,  # noqa: F401 - the fixture
)

from starforge_daemon.core.command import MAX_ARG_BYTES

BIG = 500 * 1024

# Copies the prompt file it is given, and its permissions, into the project.
READ_PROMPT_FILE = """\
import os, stat, sys
seen = os.path.join(os.environ["STARFORGE_PROJECT_DIR"], "seen")
with open(sys.argv[1]) as prompt, open(seen, "w") as copy:
    copy.write(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)) + "\\n" + prompt.read())
"""


def test_a_500_kb_trigger_runs_with_the_default_command(
        project: Project, fake_api: FakeMessagesAPI) -> None:  # noqa: F811
    fake_api.script(Turn.text("Read it all."))
    del project.settings["AGENT_COMMAND"]  # the default: claude, the prompt on stdin
    project.write_env()
    project.cli("daemon", "start", env={**fake_api.env, "PATH": _path_with(fake_api.claude)})
    marker = "end-of-the-big-message-7f3c"
    project.trigger("big.trigger", "junior-dev-a", action="review",
                    message="x" * BIG + marker)
    assert project.wait_archived(1, timeout=60) == {"big.trigger": "done"}
    [request] = fake_api.main_requests()
    prompt = "\n".join(request.texts())
    assert marker in prompt and len(prompt) > BIG
    prompt_file_gone(project, project.result("big.trigger")["run_id"])


def prompt_file_gone(project: Project, run_id: str) -> None:
    """The prompt file goes with its run, once the run's trigger is archived (just after)."""
    prompt = project.paths.prompt_file(run_id)
    wait_until(lambda: not prompt.exists(), what=f"{prompt.name} removed")


def _path_with(program: str | None) -> str:
    """``PATH`` with the claude the fake API found first: the default command names it bare."""
    assert program is not None
    return f"{os.path.dirname(program)}:{os.environ['PATH']}"


def test_prompt_file_hands_the_prompt_over_privately(project: Project) -> None:
    script = project.root / "read_prompt_file.py"
    script.write_text(READ_PROMPT_FILE)
    project.start(AGENT_COMMAND=shlex.join([sys.executable, str(script)]) + " {prompt_file}")
    project.trigger("t.trigger", "agent-a", message="y" * 300_000)
    assert project.wait_archived(1) == {"t.trigger": "done"}
    mode, prompt = (project.root / "seen").read_text().split("\n", 1)
    assert mode == oct(stat.S_IRUSR | stat.S_IWUSR), "only the daemon's user reads the prompt"
    assert prompt.startswith("You are the StarForge agent 'agent-a'.") and "y" * 300_000 in prompt
    run_id = project.result("t.trigger")["run_id"]
    prompt_file_gone(project, run_id)


def test_a_trigger_too_big_for_one_argument_is_rejected_and_the_daemon_goes_on(
        project: Project) -> None:
    project.start(AGENT_COMMAND=f"{project.settings['AGENT_COMMAND']} {{prompt}}")
    project.trigger("huge.trigger", "agent-a", message="z" * 200_000)
    project.trigger("small.trigger", "agent-a")
    assert project.wait_archived(2) == {"huge.trigger": "invalid", "small.trigger": "done"}
    reason = project.result("huge.trigger")["reason"]
    assert f"limit of {MAX_ARG_BYTES - 1} bytes for one argument" in reason
    assert "{prompt_file}" in reason and "AGENT_STDIN" in reason
    assert not project.journal("start") or all(
        start["trigger"] != "huge.trigger" for start in project.journal("start")), "never ran"
    assert "Traceback" not in project.log()


def test_agent_stdin_prompt_hands_any_command_the_prompt_on_stdin(project: Project) -> None:
    project.start(AGENT_STDIN="prompt")
    project.trigger("t.trigger", "agent-a", message="w" * 200_000)
    assert project.wait_archived(1) == {"t.trigger": "done"}
    [start] = project.journal("start")
    assert start["stdin"].startswith("You are the StarForge agent 'agent-a'.")
    assert "w" * 200_000 in start["stdin"]
    prompt_file_gone(project, start["run_id"])
