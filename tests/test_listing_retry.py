"""``starforge queue list`` shows a retry waiting out its backoff in ``running/``; ``starforge
runs`` reads result files of other versions, and damaged ones."""

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


def test_runs_read_old_and_damaged_result_files(project: Project) -> None:
    project.write_env()
    project.paths.ensure()
    failed = project.paths.failed
    failed.mkdir(parents=True, exist_ok=True)
    old = {"trigger": "old.trigger", "outcome": "failed", "reason": "exited with status 3",
           "exit_code": 3, "run_id": "agent-a-1761368400-abc123", "agent": "agent-a",
           "ticket": 52, "started_at": "2025-10-25T05:00:00Z", "ended_at": "2025-10-25T05:00:01Z",
           "duration_s": 1, "log": "/x/agent-a-1761368400-abc123.log",
           "archived_at": "2025-10-25T05:00:02Z"}
    damaged = {"outcome": 5, "agent": ["agent-b"], "ticket": {"no": 1}, "attempts": "many",
               "archived_at": "2025-10-25T05:00:03Z"}
    for name, result in (("old.trigger", old), ("damaged.trigger", damaged)):
        (failed / name).write_text(json.dumps({"to_agent": "agent-b"}))
        (failed / f"{name}.result.json").write_text(json.dumps(result))
    (failed / "torn.trigger").write_text(json.dumps({"to_agent": "agent-c"}))
    (failed / "torn.trigger.result.json").write_text('{"outcome": "fai')
    runs = {run["name"]: run for run in json.loads(project.cli("runs", "--json").stdout)}
    assert (runs["old.trigger"]["ticket"], runs["old.trigger"]["outcome"]) == ("52", "failed")
    assert runs["old.trigger"]["ended_at"] == "2025-10-25T05:00:01Z"
    assert runs["damaged.trigger"] == {
        "name": "damaged.trigger", "failed": True, "agent": "agent-b", "pool": None,
        "ticket": None, "outcome": None, "reason": None, "ended_at": "2025-10-25T05:00:03Z",
        "run_id": None, "log": None}
    assert runs["torn.trigger"]["agent"] == "agent-c" and runs["torn.trigger"]["outcome"] is None
    assert "old.trigger" in project.cli("runs", "--failed").stdout
