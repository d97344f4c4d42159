"""Dependencies, hand-off, dedupe keys and ``starforge wait`` on the real daemon, through the CLI
an agent uses (``starforge trigger --id/--after``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import Project, wait_until
from test_recovery import kill_daemon


def submit(project: Project, agent: str, trigger_id: str, *args: str, **context) -> None:
    extra = ["--context", json.dumps(context)] if context else []
    project.cli("trigger", agent, "--id", trigger_id, *args, *extra)


@contextmanager
def wait_in_background(project: Project, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``starforge wait`` running while the test goes on; killed if the test fails first."""
    waiter = subprocess.Popen([sys.executable, "-m", "starforge_daemon", "--project-dir",
                               str(project.root), "wait", *args], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield waiter
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()


def test_a_chain_waits_shows_why_and_hands_the_result_on(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true")
    submit(project, "dev", "impl-1", gate="g1")
    submit(project, "tester", "test-1", "--after", "impl-1")
    wait_until(lambda: project.started() == ["impl-1.trigger"], what="impl-1 running")
    listing = json.loads(project.cli("queue", "list", "--json").stdout)
    [waiting] = listing["pending"]
    assert (waiting["id"], waiting["state"], waiting["waiting_for"]) == \
        ("test-1", "waiting", ["impl-1"])
    assert waiting["note"] == "waiting for impl-1"
    status = json.loads(project.cli("status", "--json").stdout)
    assert status["waiting"] == [{"trigger": "test-1.trigger", "id": "test-1",
                                  "waiting_for": ["impl-1"]}]
    assert "waiting: test-1.trigger for impl-1" in project.cli("status").stdout
    timed_out = project.cli("wait", "test-1", "--timeout", "0.3", check=False)
    assert timed_out.returncode == 124 and "still waiting" in timed_out.stderr
    with wait_in_background(project, "test-1") as waiter:
        project.open_gate("g1")
        out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and out == "test-1: succeeded (exited with status 0)\n"
    [_, test_start] = project.journal("start")
    [upstream] = test_start["env"]["upstream_results"]
    assert upstream["id"] == "impl-1" and upstream["agent"] == "dev"
    assert (upstream["outcome"], upstream["exit_code"]) == ("succeeded", 0)
    assert upstream["log"].endswith(".log") and upstream["run_id"].startswith("dev-")
    assert project.cli("wait", "impl-1", "test-1").returncode == 0, "ended ones answer at once"


def test_a_fan_in_with_one_failure_under_each_policy(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true")
    submit(project, "dev1", "part-1", gate="parts")
    submit(project, "dev2", "part-2", gate="parts", exit=3)
    for policy in ("fail", "skip", "run"):
        submit(project, f"merge-{policy}", f"merge-{policy}", "--after", "part-1", "--after",
               "part-2", "--on-upstream-failure", policy)
    wait_until(lambda: len(project.started()) == 2, what="both parts running")
    everything = project.cli("wait", "--all", "--json", "--timeout", "0", check=False)
    assert everything.returncode == 124
    assert {ending["id"] for ending in json.loads(everything.stdout)} == {
        "part-1", "part-2", "merge-fail", "merge-skip", "merge-run"}, "--all: queued or running"
    with wait_in_background(project, "part-1", "part-2", "merge-fail", "merge-skip",
                            "merge-run", "--json") as waiter:
        project.open_gate("parts")
        out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 1, (out, err)
    outcomes = {ending["id"]: ending["outcome"] for ending in json.loads(out)}
    assert outcomes == {"part-1": "succeeded", "part-2": "failed", "merge-fail": "failed",
                        "merge-skip": "skipped", "merge-run": "succeeded"}
    assert sorted(project.started()) == ["merge-run.trigger", "part-1.trigger", "part-2.trigger"]
    assert project.result("merge-fail.trigger")["reason"] == \
        "dependency part-2 failed: exited with status 3"
    assert project.archived("failed") == ["merge-fail.trigger", "merge-skip.trigger",
                                          "part-2.trigger"]
    assert "DEPENDENCY" in project.log()


def test_trigger_wait_follow_prints_the_log_and_exits_with_the_outcome(project: Project) -> None:
    project.start()
    done = project.cli("trigger", "writer", "--id", "w-1", "--context", '{"output": 10}',
                       "--wait", "--follow")
    assert done.stdout.splitlines()[0].endswith("w-1.trigger")
    assert "THE END" in done.stdout and done.stdout.endswith("w-1: succeeded (exited with "
                                                             "status 0)\n")
    failed = project.cli("trigger", "writer", "--context", '{"exit": 2}', "--wait", check=False)
    assert failed.returncode == 1 and "failed (exited with status 2)" in failed.stdout


def test_a_resent_handoff_with_the_same_dedupe_key_is_a_duplicate(project: Project) -> None:
    project.start()
    submit(project, "reviewer", "review-a", "--dedupe-key", "review:52", gate="r")
    wait_until(lambda: project.started(), what="first review running")
    submit(project, "reviewer", "review-b", "--dedupe-key", "review:52")
    wait_until(lambda: project.archived("invalid"), what="duplicate archived")
    result = project.result("review-b.trigger")
    assert result["outcome"] == "duplicate"
    assert "review-a.trigger (id review-a)" in result["reason"]
    assert project.cli("wait", "review-b", check=False).returncode == 1
    project.open_gate("r")
    assert project.cli("wait", "review-a").returncode == 0
    submit(project, "reviewer", "review-c", "--dedupe-key", "review:52")
    assert project.cli("wait", "review-c").returncode == 0, "the key is free again"


def test_a_dependency_survives_a_killed_daemon(project: Project) -> None:
    project.start(PARALLEL_DAEMON="true")
    submit(project, "dev", "up", gate="up")
    submit(project, "tester", "down", "--after", "up")
    wait_until(lambda: project.started() == ["up.trigger"], what="up running")
    kill_daemon(project)
    project.start()
    wait_until(lambda: sum("WAIT" in line and "down.trigger" in line
                           for line in project.log().splitlines()) == 2,
               what="the new daemon has read down.trigger and holds it back")
    assert project.started() == ["up.trigger"], "down still waits after the restart"
    project.open_gate("up")
    assert project.cli("wait", "down").returncode == 0
    assert project.started() == ["up.trigger", "down.trigger"]
