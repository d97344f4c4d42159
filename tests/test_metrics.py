"""Metrics and health (METRICS_ADDRESS): a real daemon's /metrics, scraped over HTTP, agree with
its run history; /healthz and ``status --check`` say when the loop is stopped or the keeper is
gone; an address other machines reach is refused."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from conftest import Project, wait_until
from prometheus_client.parser import text_string_to_metric_families

from starforge_daemon import __version__
from starforge_daemon.core.holds import HoldKind
from starforge_daemon.daemon.health import HEARTBEAT_SECONDS, LATE_LIMIT_SECONDS, Heartbeat

STREAM_AGENT = Path(__file__).parent / "stream_agent.py"
COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(STREAM_AGENT))}"
MODEL = "claude-sonnet-5"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, body = get(f"{base}/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def by_labels(samples: dict[Any, float], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    labelled = {}
    for (sample, labels), value in samples.items():
        if sample == name:
            found = dict(labels)
            labelled[tuple(found[key] for key in keys)] = value
    return labelled


def health(base: str, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    status, body = get(f"{base}/healthz", timeout)
    return status, json.loads(body)


def succeeding(cost: float, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """A stream-json script that reports its model, tokens and cost, and succeeds."""
    return {"before": [
        {"type": "system", "subtype": "init", "session_id": "s", "model": MODEL},
        {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1,
         "result": "done", "session_id": "s", "total_cost_usd": cost,
         "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}]}


def start(project: Project) -> str:
    port = free_port()
    project.start(AGENT_COMMAND=COMMAND, AGENT_OUTPUT="claude", PARALLEL_DAEMON="true",
                  RETRY_BACKOFF=0, METRICS_ADDRESS=f"127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


def test_metrics_count_what_the_run_history_shows(project: Project) -> None:
    base = start(project)
    project.trigger("g1.trigger", "gated", context={**succeeding(0.5, 100, 10), "gate": "G"})
    project.trigger("g2.trigger", "gated", context=succeeding(0.25, 50, 5))
    wait_until(lambda: by_labels(scrape(base), "starforge_triggers_queued", "agent")
               == {("gated",): 1.0} and scrape(base)[("starforge_runs_in_flight", ())] == 1,
               what="one run of gated in flight, one trigger waiting for it")
    project.open_gate("G")
    project.trigger("ok.trigger", "alpha", context=succeeding(0.125, 10, 1))
    project.trigger("fail1.trigger", "alpha", context={"exit": 3})
    project.trigger("fail2.trigger", "beta", context={"exit": 3})
    project.trigger("flaky.trigger", "beta", max_retries=1, context={"exit": 3})
    project.raw_trigger("bad.trigger", b"{not json")
    project.wait_archived(7)
    lines = project.history(7)
    runs = [line for line in lines if line.get("run_id")]  # bad.trigger has a line, no run
    assert len(runs) == 7, "the flaky trigger ran twice"

    def idle() -> dict[Any, float] | None:
        samples = scrape(base)
        waiting = by_labels(samples, "starforge_triggers_queued", "agent")
        return samples if waiting == {("gated",): 0.0} \
            and samples[("starforge_runs_in_flight", ())] == 0 else None

    samples = wait_until(idle, what="the heartbeat's gauges: nothing waits or runs")
    finished = Counter((run["agent"], run["outcome"]) for run in runs)
    assert by_labels(samples, "starforge_runs_finished_total", "agent", "outcome") == finished
    assert finished[("beta", "failed")] == 3 and finished[("gated", "succeeded")] == 2
    per_agent = Counter((run["agent"],) for run in runs)
    assert by_labels(samples, "starforge_run_duration_seconds_count", "agent") == per_agent
    retried = Counter((run["agent"],) for run in runs if run.get("retry_at"))
    assert by_labels(samples, "starforge_retries_total", "agent") == retried == {("beta",): 1}
    assert samples[("starforge_triggers_rejected_total", ())] == len(project.archived("invalid"))
    spawned = {run["trigger"] for run in runs}
    assert sum(by_labels(samples, "starforge_dispatch_latency_seconds_count", "agent").values()) \
        == len(spawned) == 6, "one dispatch per queued trigger, not per retry"

    cost, tokens = Counter(), Counter()
    for run in runs:
        if run.get("cost_usd"):
            cost[(run["agent"], run["model"])] += run["cost_usd"]
            tokens[(run["agent"], run["model"], "input")] += run["tokens_in"]
            tokens[(run["agent"], run["model"], "output")] += run["tokens_out"]
    assert cost == {("gated", MODEL): 0.75, ("alpha", MODEL): 0.125}
    assert by_labels(samples, "starforge_cost_usd_total", "agent", "model") == cost
    assert by_labels(samples, "starforge_tokens_total", "agent", "model", "type") == tokens
    assert samples[("starforge_build_info", (("version", __version__),))] == 1
    assert samples[("starforge_keeper_up", ())] == 1
    assert 0 <= samples[("starforge_loop_lag_seconds", ())] < LATE_LIMIT_SECONDS
    assert set(by_labels(samples, "starforge_holds_total", "kind")) \
        == {(str(kind),) for kind in HoldKind}, "every kind from the start, at 0"
    dashboard = (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text()
    shown = set(re.findall(r"\b(?:starforge|process)_[a-z_]+", dashboard)) - {"starforge_daemon"}
    assert shown <= {name for name, _labels in samples}, "the sample dashboard's metrics exist"


def keeper_of(project: Project) -> psutil.Process:
    """The project's keeper: of the two processes started as it, the child (the parent is its
    reaper). An agent it is spawning shows the keeper's command line until it execs, and the
    run's folder for its working directory, where the keeper's is ``/`` but while it spawns."""
    socket_path = str(project.paths.keeper_socket)
    started = [proc for proc in psutil.process_iter(["cmdline", "ppid", "cwd"])
               if socket_path in (proc.info["cmdline"] or [])]
    return next(proc for proc in started
                if proc.info["ppid"] in {p.pid for p in started} and proc.info["cwd"] == "/")


def test_healthz_and_status_check_see_a_stopped_loop_and_a_lost_keeper(project: Project) -> None:
    base = start(project)
    _, verdict = wait_until(lambda: (h := health(base))[0] == 200 and h, 2,
                            "healthy from the loop's first turn")
    assert verdict["status"] == "ok" and verdict["reason"] is None, verdict
    assert verdict["keeper_connected"] and 0 <= verdict["loop_lag_s"] < LATE_LIMIT_SECONDS
    checked = project.cli("daemon", "status", "--check")
    assert checked.stdout.startswith("healthy: daemon pid") and "keeper connected" in checked.stdout

    pid = project.daemon_pid()
    answers: list[tuple[int, dict[str, Any]]] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="stopped")
        asking = threading.Thread(target=lambda: answers.append(health(base, timeout=60)))
        asking.start()  # answered once the daemon runs again
        checked = project.cli("daemon", "status", "--check", check=False)  # waits 5s for the loop
        assert checked.returncode == 1, checked
        assert checked.stdout == f"unhealthy: daemon pid {pid}: the daemon did not answer " \
                                 "within 5s\n"
        wait_until(lambda: time.monotonic() - stopped_at > LATE_LIMIT_SECONDS + HEARTBEAT_SECONDS,
                   what="the loop is late beyond the limit")
    finally:
        os.kill(pid, signal.SIGCONT)
    asking.join(timeout=30)
    status, verdict = answers[0]
    assert status == 503 and verdict["status"] == "unhealthy", verdict
    assert "loop is" in verdict["reason"] and "late" in verdict["reason"], verdict
    wait_until(lambda: health(base)[0] == 200, what="healthy again once the loop turns on time")

    keeper = keeper_of(project)
    keeper.kill()
    status, verdict = wait_until(lambda: (h := health(base))[0] == 503 and h, what="503")
    assert "keeper is not connected" in verdict["reason"] and not verdict["keeper_connected"]
    checked = project.cli("daemon", "status", "--check", check=False)
    assert checked.returncode == 1 and "keeper is not connected" in checked.stdout, checked
    assert len(checked.stdout.splitlines()) == 1

    project.trigger("t.trigger", "alpha", context=succeeding(0.01, 1, 1))  # starts a new keeper
    project.wait_archived(1)
    wait_until(lambda: health(base)[0] == 200, what="healthy with the new keeper")
    project.stop()
    assert project.cli("daemon", "status", "--check", check=False).returncode == 1


def test_an_address_other_machines_reach_is_refused_at_start(project: Project) -> None:
    project.write_env(METRICS_ADDRESS=f"0.0.0.0:{free_port()}")
    refused = project.cli("daemon", "start", check=False)
    assert refused.returncode == 1 and not project.paths.pid_file.exists()
    assert refused.stderr.strip().splitlines() == [
        f"Error: cannot start: METRICS_ADDRESS={project.settings['METRICS_ADDRESS']} is not a "
        "loopback address, so other machines could read the metrics: use 127.0.0.1:PORT, or "
        "set METRICS_ALLOW_REMOTE=true"]
    project.write_env(METRICS_ADDRESS="9464")
    refused = project.cli("daemon", "start", check=False)
    assert refused.returncode == 1 and "METRICS_ADDRESS='9464': must be HOST:PORT" in refused.stderr


def test_a_port_in_use_stops_the_start(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project.write_env(METRICS_ADDRESS=f"127.0.0.1:{port}")
        refused = project.cli("daemon", "start", check=False)
    assert refused.returncode == 1 and not project.paths.pid_file.exists()
    assert f"cannot serve metrics on METRICS_ADDRESS=127.0.0.1:{port}: Address already in use" \
        in refused.stderr


def test_the_verdict_judges_how_late_the_loop_is_and_the_keeper() -> None:
    now, keeper = [100.0], [True]
    heartbeat = Heartbeat(lambda: keeper[0], clock=lambda: now[0])
    assert not heartbeat.verdict().healthy, "no beat yet"
    heartbeat.beat()
    now[0] += HEARTBEAT_SECONDS + LATE_LIMIT_SECONDS
    assert heartbeat.verdict().healthy, "late, but within the limit"
    now[0] += 0.5
    assert "3.5s late" in (heartbeat.verdict().reason or "")
    heartbeat.beat()  # the loop is back, but that turn came late
    assert not heartbeat.verdict().healthy
    now[0] += HEARTBEAT_SECONDS
    keeper[0] = False
    heartbeat.beat()
    assert heartbeat.verdict().reason == "the keeper is not connected (it ended; the next run " \
                                         "starts a new one)"
