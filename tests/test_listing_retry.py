"""``starforge queue list`` shows a retry waiting out its backoff in ``running/``."""

from __future__ import annotations

import json

from conftest import Project, wait_until


def test_queue_list_shows_a_retry_waiting_for_its_backoff(project: Project) -> None:
    project.start(MAX_RETRIES=1, RETRY_BACKOFF=600)
    project.trigger("flaky.trigger", context={"exit": 3})
    wait_until(lambda: list(project.paths.attempts.iterdir()), what="the attempts record")
    wait_until(lambda: project.slots().get("agent-a", {}).get("status") == "idle",
               what="the first attempt over")
    listing = json.loads(project.cli("queue", "list", "--json").stdout)
    [pending] = listing["pending"]
    assert pending["name"] == "flaky.trigger" and pending["state"] == "waiting"
    assert pending["note"].startswith("retry in ") and pending["agent"] == "agent-a"
    assert (project.paths.running / "flaky.trigger").exists(), "the retry waits in running/"
    assert not project.archived("failed")
