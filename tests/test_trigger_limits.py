"""A trigger's own ``timeout``: its run may take that long instead of AGENT_TIMEOUT, never more
than MAX_AGENT_TIMEOUT, and a bad value is refused with the reason."""

from __future__ import annotations

import pytest
from conftest import Project

from starforge_daemon.intake.validate import InvalidTrigger, trigger_from_dict


def test_a_triggers_timeout_replaces_agent_timeout(project: Project) -> None:
    project.start(AGENT_TIMEOUT=600, PARALLEL_DAEMON="true")
    project.trigger("short.trigger", "agent-a", timeout=1, context={"gate": "never"})
    project.wait_archived(1)
    assert project.result("short.trigger")["outcome"] == "timed_out"
    assert "timed out after 1s" in project.result("short.trigger")["reason"]


def test_max_agent_timeout_caps_what_a_trigger_asks_for(project: Project) -> None:
    project.start(AGENT_TIMEOUT=600, MAX_AGENT_TIMEOUT=1)
    project.trigger("greedy.trigger", "agent-a", timeout=3600, context={"gate": "never"})
    project.wait_archived(1)
    assert "timed out after 1s" in project.result("greedy.trigger")["reason"]


@pytest.mark.parametrize("value", [0, -5, True, "60", 7 * 86400 + 1])
def test_a_bad_timeout_is_refused_with_the_rule(value: object) -> None:
    with pytest.raises(InvalidTrigger, match="timeout: must be a number of seconds above 0"):
        trigger_from_dict({"to_agent": "a", "timeout": value})


def test_a_good_timeout_is_kept() -> None:
    assert trigger_from_dict({"to_agent": "a", "timeout": 90.5}).timeout == 90.5
