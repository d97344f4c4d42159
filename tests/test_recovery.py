"""Crashes, restarts and stale or broken files: the daemon comes back and loses nothing."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
from conftest import Project, gone, wait_until

from starforge_daemon.core.models import Run

PR_SET_CHILD_SUBREAPER = 36


def kill_daemon(project: Project) -> int:
    pid = project.daemon_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: gone(pid), 5, "daemon gone")
    return pid


def test_sigkilled_daemon_adopts_running_agent_and_records_its_real_exit(project: Project) -> None:
    project.trigger("t.trigger", "worker", context={"gate": "t", "exit": 7})
    project.trigger("u.trigger", "worker")
    project.start()
    start = wait_until(lambda: project.journal("start"), what="agent started")[0]
    busy = wait_until(lambda: project.slots().get("worker", {}).get("pid") and
                      project.slots()["worker"], what="busy slot saved")
    kill_daemon(project)
    assert psutil.pid_exists(start["pid"]), "the agent outlives the daemon"
    project.start()
    slot = project.slots()["worker"]
    assert slot["status"] == "busy" and slot["pid"] == str(start["pid"])
    assert slot["started_at"] == busy["started_at"] and slot["run_id"] == busy["run_id"]
    assert project.started() == ["t.trigger"], "u waits for the adopted run"
    project.open_gate("t")
    project.wait_archived(2)
    result = project.result("t.trigger")
    assert (result["outcome"], result["exit_code"]) == ("failed", 7)
    assert project.started() == ["t.trigger", "u.trigger"]
    assert "RECOVERY" in project.log()
    wait_until(lambda: project.slots()["worker"]["status"] == "idle", what="slot idle")


def test_adopted_run_keeps_its_original_timeout(project: Project) -> None:
    project.trigger("adopted.trigger", "worker", context={"gate": "adopted"})
    project.start(AGENT_TIMEOUT=600)
    wait_until(lambda: project.journal("start"), what="agent started")
    kill_daemon(project)
    project.trigger("new.trigger", "newcomer", context={"sleep": 60})
    project.start(AGENT_TIMEOUT=1, AGENT_KILL_GRACE=0.5, PARALLEL_DAEMON="true")
    wait_until(lambda: project.all_archived().get("new.trigger"), what="the new run timed out")
    assert "timed out after 1s" in project.result("new.trigger")["reason"]
    # the adopted run started first: had it taken the new 1 s, it would have timed out first
    timeouts = [line for line in project.log().splitlines() if " TIMEOUT " in line]
    assert timeouts and not [line for line in timeouts if "agent=worker" in line], timeouts
    project.open_gate("adopted")
    project.wait_archived(2)
    assert project.result("adopted.trigger")["outcome"] == "succeeded"


def test_run_that_ended_while_no_daemon_ran_is_archived_with_its_status(project: Project) -> None:
    project.trigger("t.trigger", "worker", context={"gate": "t", "exit": 4})
    project.start()
    wait_until(lambda: project.journal("start"), what="agent started")
    kill_daemon(project)
    project.open_gate("t")
    journals = lambda: [p.read_text() for p in project.paths.runs.glob("*.jsonl")]  # noqa: E731
    wait_until(lambda: any('"exit"' in text for text in journals()), 10,
               "the keeper recorded the exit")
    assert project.all_archived() == {}
    project.start()
    project.wait_archived(1)
    result = project.result("t.trigger")
    assert result["exit_code"] == 4
    assert result["pid"] == project.journal("start")[0]["pid"]  # the journal knew the agent
    assert "RECOVERY" in project.log()


@contextlib.contextmanager
def orphans_come_here() -> Iterator[None]:
    """This process as a child subreaper while the block runs: the processes started below it
    that lose their parents come to it, so it can reap them as init would, their exit status
    gone (this machine's init leaves zombies, whose status the kernel still shows). Its
    children left at the end are reaped."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assert prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def test_run_whose_processes_vanished_is_archived_as_lost(project: Project) -> None:
    """The agent, its keeper and the keeper's reaper all killed, the agent reaped by another:
    no process can know how the run ended."""
    with orphans_come_here():
        project.trigger("t.trigger", "worker", context={"sleep": 60})
        project.start()
        start = wait_until(lambda: project.journal("start"), what="agent started")[0]
        kill_daemon(project)
        keeper = psutil.Process(start["pid"]).parent()
        reaper = keeper.parent()  # which would record the agent's exit once the keeper is gone
        for process in (reaper, keeper):
            process.kill()
        wait_until(lambda: gone(keeper.pid) and gone(reaper.pid), 5, "keeper and reaper gone")
        os.killpg(start["pid"], signal.SIGKILL)
        os.waitpid(start["pid"], 0)  # its status gone, as init discards it
        project.start()
        project.wait_archived(1)
        assert project.all_archived() == {"t.trigger": "failed"}
        assert project.result("t.trigger")["outcome"] == "lost"
        wait_until(lambda: project.slots()["worker"]["status"] == "idle", what="slot idle")
        project.stop()


def test_reused_pid_is_never_signalled_or_adopted(project: Project) -> None:
    """A run record naming a live, unrelated process (same pid, other start time)."""
    project.paths.ensure()
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        trigger = project.paths.running / "t.trigger"
        trigger.write_text(json.dumps({"to_agent": "worker"}))
        run = Run(run_id="worker-1-abcdef", agent="worker", trigger_name="t.trigger",
                  trigger_path=str(trigger), log_path=str(project.paths.logs / "w.log"),
                  started_at=time.time() - 100, timeout=1)
        stale = {"pid": bystander.pid, "start": 12345.0}  # as the keeper writes it
        (project.paths.runs / "1.jsonl").write_text(
            json.dumps({"run_id": run.run_id, "run": run.to_dict()}) + "\n"
            + json.dumps({"run_id": run.run_id, "started": stale}) + "\n")
        project.start()
        project.wait_archived(1)
        assert project.result("t.trigger")["outcome"] == "lost"
        assert bystander.poll() is None, "the unrelated process was not signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_claimed_but_never_started_trigger_is_queued_again(project: Project) -> None:
    project.paths.ensure()
    (project.paths.running / "t.trigger").write_text(json.dumps({"to_agent": "worker"}))
    project.start()
    project.wait_archived(1)
    assert project.all_archived() == {"t.trigger": "done"}
    assert len(project.journal("start")) == 1


def test_restart_hands_running_agents_to_the_new_daemon(project: Project) -> None:
    project.trigger("t.trigger", "worker", context={"gate": "t", "exit": 5})
    old = project.start()
    start = wait_until(lambda: project.journal("start"), what="agent started")[0]
    project.cli("daemon", "restart")
    new = project.daemon_pid()
    assert new != old and gone(old)
    assert psutil.pid_exists(start["pid"])
    assert project.slots()["worker"]["pid"] == str(start["pid"])
    project.open_gate("t")
    project.wait_archived(1)
    assert project.result("t.trigger")["exit_code"] == 5
    assert len(project.journal("start")) == 1


def test_stale_pid_file_does_not_block_a_start(project: Project) -> None:
    project.paths.ensure()
    for stale in ("999999", str(os.getpid()), "garbage"):
        project.paths.pid_file.write_text(stale)
        assert project.cli("daemon", "status", check=False).returncode == 3, stale
        daemon = psutil.Process(project.start())
        assert daemon.cwd() == str(project.root) and "daemon" in daemon.cmdline(), (
            f"after {stale!r}, the pid file names the new daemon")
        project.stop()
        assert gone(daemon.pid) and not project.paths.pid_file.exists()


def test_corrupt_state_files_are_reported_and_rebuilt(project: Project) -> None:
    project.paths.ensure()
    for content in (b"", b'{"agent-a": {"status": "bu', b"\x00\xff not json", b"[1, 2]"):
        project.paths.slots_file.write_bytes(content)
        project.paths.state_file.write_bytes(content)
        recoveries = project.log().count("RECOVERY")
        project.trigger("t.trigger", "agent-a")
        project.start()
        project.wait_archived(1)
        wait_until(lambda: project.slots().get("agent-a", {}).get("status") == "idle",
                   what="slot rebuilt and idle")
        assert json.loads(project.paths.state_file.read_text())["pid"] == project.daemon_pid()
        project.stop()
        assert project.log().count("RECOVERY") > recoveries, f"{content!r} not reported"
        for path in project.paths.processed.glob("t.trigger*"):
            path.unlink()


def test_simultaneous_starts_leave_exactly_one_daemon(project: Project) -> None:
    project.write_env()
    command = [sys.executable, "-m", "starforge_daemon", "--project-dir", str(project.root),
               "daemon", "start"]
    starters = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    results = [(p.wait(60), p.stderr.read()) for p in starters]
    for p in starters:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 1, 1]
    assert all("already running" in err for code, err in results if code)
    daemons = [p for p in psutil.process_iter(["cmdline", "cwd"])
               if p.info["cwd"] == str(project.root) and "daemon" in (p.info["cmdline"] or [])]
    assert len(daemons) == 1


def test_failed_state_save_keeps_the_last_good_file_and_recovers(project: Project) -> None:
    project.trigger("first.trigger", "agent-a")
    pid = project.start()
    project.wait_archived(1)
    wait_until(lambda: "agent-a" in project.slots(), what="slot saved")
    good = project.paths.slots_file.read_text()
    blocker = project.paths.daemon_dir / f".agent-slots.json.{pid}.tmp"
    blocker.mkdir()  # the next save cannot create its temporary file
    project.trigger("second.trigger", "agent-b")
    project.wait_archived(2)
    wait_until(lambda: "cannot save state" in project.log(), what="the error is logged")
    assert project.paths.slots_file.read_text() == good
    blocker.rmdir()
    wait_until(lambda: "agent-b" in project.slots(), what="saved again once possible")


def test_foreground_handoff_exits_75_and_the_next_daemon_adopts(project: Project) -> None:
    """What `systemctl reload` does: SIGUSR1, exit 75, systemd starts the next daemon."""
    project.write_env()
    project.trigger("t.trigger", "worker", context={"gate": "t", "exit": 5})
    command = [sys.executable, "-m", "starforge_daemon", "--project-dir", str(project.root),
               "daemon", "start", "--foreground"]
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start = wait_until(lambda: project.journal("start"), what="agent started")[0]
        daemon.send_signal(signal.SIGUSR1)
        assert daemon.wait(30) == 75
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert psutil.pid_exists(start["pid"]), "the agent keeps running"
    project.start()
    assert project.slots()["worker"]["pid"] == str(start["pid"]), "adopted"
    project.open_gate("t")
    project.wait_archived(1)
    assert project.result("t.trigger")["exit_code"] == 5
