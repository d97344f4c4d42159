"""Stopping the real Claude Code CLI in the middle of a Bash tool call: by AGENT_TIMEOUT, by
``agent stop`` and by ``daemon stop``. The tool's command runs in a session of its own
(``setsid``); after the stop no process of the run remains, claude asks the model nothing more,
and its next command never runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import wait_until
from fake_messages_api import (
    Turn,
    fake_api,  # noqa: F401 - the fixture claude's needs
)
from test_claude_cli import ClaudeProject, claude  # noqa: F401 - the fixture
from test_run_containment import processes_of_run


def stop_by_timeout(claude: ClaudeProject) -> None:  # noqa: F811
    """Nothing to do: the run's AGENT_TIMEOUT ends it."""


def stop_agent(claude: ClaudeProject) -> None:  # noqa: F811
    claude.project.cli("agent", "stop", "junior-dev-a")


def stop_daemon(claude: ClaudeProject) -> None:  # noqa: F811
    claude.project.stop()


@pytest.mark.parametrize(("stop", "outcome"), [(stop_by_timeout, "timed_out"),
                                               (stop_agent, "killed"),
                                               (stop_daemon, "killed")])
def test_a_stopped_claude_run_leaves_nothing_running_and_asks_nothing_more(
        claude: ClaudeProject, stop: Callable[[ClaudeProject], None],  # noqa: F811
        outcome: str) -> None:
    started, second = claude.project.root / "STARTED", claude.project.root / "SECOND"
    claude.api.script(Turn.bash(f"touch {started} && sleep 1000", "Wait a long time"),
                      Turn.bash(f"touch {second}", "Run the next command"),
                      Turn.text("Both commands ran."))
    # long enough for claude to reach its tool call on a loaded machine
    timeout = {"AGENT_TIMEOUT": 15} if stop is stop_by_timeout else {}
    claude.start(AGENT_KILL_GRACE=3, **timeout)
    claude.project.trigger("t.trigger", "junior-dev-a", action="implement_ticket")
    wait_until(started.exists, 60, "the Bash tool's command running")
    asked = len(claude.api.main_requests())
    run_id = claude.project.slots()["junior-dev-a"]["run_id"]
    assert processes_of_run(run_id), "the run's processes are visible by its run id"

    stop(claude)
    claude.project.wait_archived(1, timeout=30)
    result = claude.project.result("t.trigger")
    assert result["outcome"] == outcome, result
    wait_until(lambda: not processes_of_run(run_id), 10, "every process of the run gone")
    assert len(claude.api.main_requests()) == asked, "no model request after the stop"
    assert not second.exists(), "the next command never ran"
