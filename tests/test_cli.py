"""The everyday commands through the real CLI in a temporary project, with and without a daemon:
init, trigger, queue list, daemon status --watch, logs (-f) and report."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import Project, wait_until

from starforge_daemon.core.models import Trigger
from starforge_daemon.intake.triggers import load_trigger
from starforge_daemon.store.settings import SETTINGS, Settings, load_settings


@contextmanager
def background(project: Project, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The CLI running on its own, its stdout going to a file the test can poll."""
    out = project.root.parent / f"out-{time.monotonic_ns()}.txt"
    err = out.with_suffix(".err")
    with open(out, "wb") as sink, open(err, "wb") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "starforge_daemon", "--project-dir", str(project.root), *args],
            stdout=sink, stderr=errors, stdin=subprocess.DEVNULL, cwd=project.root)
    try:
        yield proc, out
    except BaseException:
        print(f"exit status {proc.poll()}; stdout:\n{text_of(out)}\nstderr:\n{text_of(err)}")
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def interrupt(proc: subprocess.Popen[bytes]) -> int:
    """Ctrl-C: SIGINT, then the exit status."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=10)


def text_of(path: Path) -> str:
    return path.read_text(errors="replace")


def queued_files(project: Project) -> list[str]:
    return sorted(os.listdir(project.paths.triggers)) if project.paths.triggers.is_dir() else []


def queue_doc(project: Project) -> dict[str, Any]:
    return json.loads(project.cli("queue", "list", "--json").stdout)


def run_log_name(agent: str, seconds: int, tag: str = "abc123") -> str:
    return f"{agent}-{seconds}-{tag}.log"


# -- init ------------------------------------------------------------------------------------


def test_init_sets_up_the_project_and_keeps_what_exists(project: Project) -> None:
    project.paths.claude.rmdir()
    first = project.cli("init")
    for folder in project.paths.folders():
        assert folder.is_dir()
        assert f"created {folder.relative_to(project.root)}/" in first.stdout
    env = project.root / ".env"
    example = project.paths.triggers / "example.trigger.example"
    assert "created .env" in first.stdout and "starforge trigger junior-dev-a" in first.stdout
    assert load_trigger(example, 1 << 20, False) == Trigger(
        to_agent="junior-dev-a", from_agent="orchestrator", action="implement_ticket",
        context={"ticket": 52})
    assert env.stat().st_mode & 0o777 == 0o600
    env.write_text("AGENT_TIMEOUT=5\n")
    example.write_text("mine")
    second = project.cli("init")
    assert "kept    .env" in second.stdout
    assert "kept    .claude/triggers/example.trigger.example" in second.stdout
    assert "created" not in second.stdout
    assert env.read_text() == "AGENT_TIMEOUT=5\n" and example.read_text() == "mine"
    assert [name for name in queued_files(project) if name.startswith(".")] == []


def test_the_env_template_names_every_setting_with_its_default(project: Project) -> None:
    project.cli("init")
    text = (project.root / ".env").read_text()
    assert load_settings(project.paths) == Settings(), "everything in it is commented out"
    settings = re.findall(r"^# ([A-Z_]+)=(.*)$", text, re.MULTILINE)
    assert sorted(name for name, _ in settings) == sorted(item.name for item in SETTINGS)
    (project.root / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings))
    assert load_settings(project.paths) == Settings(), "the defaults it shows are the real ones"


def test_init_refuses_a_missing_project_dir(project: Project, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run([sys.executable, "-m", "starforge_daemon", "--project-dir",
                             str(missing), "init"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == f"Error: no such folder {missing}\n"
    assert not missing.exists()


def test_the_example_trigger_waits_until_someone_queues_it(project: Project) -> None:
    project.cli("init")
    project.start()
    project.trigger("real.trigger", "agent-a")
    project.wait_archived(1)
    assert (project.paths.triggers / "example.trigger.example").exists()
    assert project.all_archived() == {"real.trigger": "done"}


# -- trigger ---------------------------------------------------------------------------------


def test_trigger_writes_a_valid_file_and_prints_its_path(project: Project) -> None:
    project.paths.ensure()
    result = project.cli("trigger", "junior-dev-a", "--action", "implement_ticket",
                         "--ticket", "52", "--from", "orchestrator", "--message", "go",
                         "--context", '{"ticket": 52, "files": ["a.py"]}')
    path = Path(result.stdout.strip())
    assert path.parent == project.paths.triggers and path.name.endswith(".trigger")
    written = json.loads(path.read_text())
    assert written.pop("id") == path.name.removesuffix(".trigger"), "named after its new id"
    assert written == {
        "to_agent": "junior-dev-a", "action": "implement_ticket", "ticket": "52",
        "from_agent": "orchestrator", "message": "go",
        "context": {"ticket": 52, "files": ["a.py"]}}
    assert queued_files(project) == sorted([path.name, "processed", "running"])
    told = json.loads(project.cli("trigger", "junior-dev-b", "--id", "review-52", "--json").stdout)
    assert told == {"id": "review-52",
                    "path": str(project.paths.triggers / "review-52.trigger")}


def test_bad_trigger_arguments_are_refused_and_nothing_is_written(project: Project) -> None:
    project.paths.ensure()
    cases = {
        ("bad/name",): "to_agent",
        ("-dash",): "No such option",
        ("a" * 65,): "to_agent",
        ("agent-a", "--context", "[1, 2]"): "must be a JSON object",
        ("agent-a", "--context", "{nope"): "not valid JSON",
        ("agent-a", "--context", '{"x": NaN}'): "NaN is not JSON",
        ("agent-a", "--context", '{"ticket": [1]}'): "context.ticket",
        ("agent-a", "--bogus", "x"): "No such option",
        (): "Missing argument 'AGENT'",
    }
    for args, message in cases.items():
        result = project.cli("trigger", *args, check=False)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""
    assert queued_files(project) == ["processed", "running"]


def test_trigger_refuses_a_missing_project_dir(project: Project, tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = subprocess.run([sys.executable, "-m", "starforge_daemon", "--project-dir",
                             str(missing), "trigger", "agent-a"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 6 and result.stderr == f"Error: no such folder {missing}\n"
    assert not missing.exists()


def test_a_trigger_from_the_cli_is_run_by_the_daemon(project: Project) -> None:
    project.start()
    path = Path(project.cli("trigger", "agent-a", "--ticket", "T-7", "--action", "build").stdout
                .strip())
    project.wait_archived(1)
    result = project.result(path.name)
    assert result["outcome"] == "succeeded" and result["ticket"] == "T-7"
    assert project.journal("start")[0]["env"]["STARFORGE_ACTION"] == "build"


# -- queue list ------------------------------------------------------------------------------


def test_queue_list_without_a_daemon_is_the_dry_run(project: Project) -> None:
    project.write_env(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=2,
                      TRIGGER_SETTLE_SECONDS=3600)
    base = time.time_ns() - 60_000_000_000
    project.trigger("b1.trigger", "agent-b", mtime_ns=base + 2, ticket=7)
    project.trigger("a1.trigger", "agent-a", mtime_ns=base, action="build")
    project.trigger("a2.trigger", "agent-a", mtime_ns=base + 1)
    project.trigger("c1.trigger", "agent-c", mtime_ns=base + 3)
    project.trigger("d1.trigger", "busy-one", mtime_ns=base + 4)
    broken = project.raw_trigger("broken.trigger", b'{"to_agent": 5}')
    two_hours_ago = time.time_ns() - 7200 * 10**9  # past the settle time: judged at once
    os.utime(broken, ns=(two_hours_ago, two_hours_ago))
    project.raw_trigger("half.trigger", b'{"to_agent": "agent-a", ')
    project.paths.ensure()
    project.paths.slots_file.write_text(json.dumps({
        "busy-one": {"status": "busy", "pid": "1", "ticket": None, "started_at": None},
        "agent-b": {"status": "idle", "pid": None, "ticket": None, "started_at": None}}))
    doc = queue_doc(project)
    assert doc["daemon_running"] is False and doc["limit"] == 2 and doc["mode"] == "parallel"
    assert doc["running"] == ["busy-one"]
    rows = [(p["position"], p["name"], p["agent"], p["state"], p["note"]) for p in doc["pending"]]
    assert rows == [
        (1, "a1.trigger", "agent-a", "next", ""),
        (2, "a2.trigger", "agent-a", "waiting", "after #1"),
        (3, "b1.trigger", "agent-b", "queued", "run limit reached"),  # busy-one takes a place
        (4, "c1.trigger", "agent-c", "queued", "run limit reached"),
        (5, "d1.trigger", "busy-one", "waiting", "busy-one is busy"),
    ]
    assert doc["pending"][0]["action"] == "build" and doc["pending"][2]["ticket"] == "7"
    assert 59 < doc["pending"][0]["age_s"] < 600
    assert {(n["name"], n["kind"]) for n in doc["not_queued"]} == {
        ("broken.trigger", "invalid"), ("half.trigger", "unsettled")}
    table = project.cli("queue", "list").stdout
    assert re.search(r"^2\s+a2\.trigger\s+agent-a\s+-\s+-\s+1m\d\ds\s+waiting\s+after #1",
                     table, re.MULTILINE), table
    assert "broken.trigger: invalid: to_agent" in table
    assert "daemon: not running; a start would run 1 first (parallel mode, limit 2" in table
    assert queued_files(project) == ["a1.trigger", "a2.trigger", "b1.trigger", "broken.trigger",
                                     "c1.trigger", "d1.trigger", "half.trigger", "processed",
                                     "running"], "a listing moves nothing"


def test_queue_list_sequential_mode_runs_one_at_a_time(project: Project) -> None:
    project.write_env()
    base = time.time_ns() - 5_000_000_000
    project.trigger("x.trigger", "agent-x", mtime_ns=base)
    project.trigger("y.trigger", "agent-y", mtime_ns=base + 1)
    doc = queue_doc(project)
    assert (doc["mode"], doc["limit"]) == ("sequential", 1)
    assert [p["state"] for p in doc["pending"]] == ["next", "queued"]


def test_queue_list_empty_and_bad_settings(project: Project) -> None:
    project.write_env()
    assert "(no pending triggers)" in project.cli("queue", "list").stdout
    project.write_env(MAX_TRIGGER_BYTES="huge")
    result = project.cli("queue", "list", check=False)
    assert result.returncode == 1 and "MAX_TRIGGER_BYTES" in result.stderr
    assert project.cli("queue", "list", "--bogus", check=False).returncode == 2


def test_queue_list_with_a_running_daemon(project: Project) -> None:
    project.trigger("long.trigger", "agent-a", context={"sleep": 60})
    project.start(SEQUENTIAL_HANDOVER=0)  # sequential, nothing handed over: test_handover.py
    wait_until(lambda: project.slots().get("agent-a", {}).get("status") == "busy",
               what="agent-a busy")
    base = time.time_ns()
    project.trigger("a-next.trigger", "agent-a", mtime_ns=base)
    project.trigger("b-next.trigger", "agent-b", mtime_ns=base + 1)
    doc = queue_doc(project)
    assert doc["daemon_running"] and doc["daemon_pid"] == project.daemon_pid()
    assert doc["running"] == ["agent-a"]
    assert [(p["name"], p["state"], p["note"]) for p in doc["pending"]] == [
        ("a-next.trigger", "waiting", "agent-a is busy"),
        ("b-next.trigger", "queued", "run limit reached")]
    text = project.cli("queue", "list").stdout
    assert f"daemon: running, pid {project.daemon_pid()}; sequential mode, limit 1" in text
    assert sorted(project.all_archived()) == []


# -- daemon status ---------------------------------------------------------------------------


def test_status_watch_refreshes_until_ctrl_c(project: Project) -> None:
    project.write_env()
    project.trigger("t.trigger", "agent-a", ticket="T-1", context={"sleep": 60})
    with background(project, "daemon", "status", "--watch", "--interval", "0.2") as (proc, out):
        wait_until(lambda: "daemon: not running" in text_of(out), what="a first block")
        project.start()
        wait_until(lambda: re.search(r"agent-a\s+busy\s+\d+\s+T-1", text_of(out)),
                   what="a later block showing the running daemon's busy agent")
        assert interrupt(proc) == 0
    blocks = text_of(out).split("Every 0.2s: starforge daemon status")
    assert len(blocks) >= 3 and "\x1b[" not in text_of(out), "plain blocks when not a terminal"
    assert all("queue: " in block for block in blocks[1:-1])  # the last one may be cut short


def test_status_watch_redraws_in_place_on_a_terminal(project: Project) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the CLI on the terminal's other side
        try:
            os.chdir(project.root)
            os.execv(sys.executable, [sys.executable, "-m", "starforge_daemon", "--project-dir",
                                      str(project.root), "daemon", "status", "--watch",
                                      "--interval", "0.1"])
        finally:
            os._exit(127)
    screen = bytearray()

    def read_some() -> None:
        while select.select([fd], [], [], 0)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side is closed
                return
            if not chunk:
                return
            screen.extend(chunk)

    status: list[int] = []

    def frames() -> bool:
        read_some()
        return screen.count(b"\x1b[H") >= 3

    def exited() -> bool:
        read_some()
        done, code = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            status.append(os.waitstatus_to_exitcode(code))
        return bool(status)

    try:
        wait_until(frames, what="three frames")
        os.kill(pid, signal.SIGINT)
        wait_until(exited, what="the CLI to exit")
    finally:
        if not status:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status == [0]
    assert screen.startswith(b"\x1b[2J\x1b[H"), "cleared once, then redrawn from the top"
    drawn = bytes(screen).split(b"\x1b[H")[1:]
    assert all(b"daemon: not running" in frame and frame.count(b"\x1b[K") > 5
               for frame in drawn[:-1]), "each line cleared to its end"


def test_status_watch_json_and_option_errors(project: Project) -> None:
    with background(project, "daemon", "status", "--watch", "--json", "--interval",
                    "0.1") as (proc, out):
        wait_until(lambda: text_of(out).count('"running": false') >= 2, what="two documents")
        assert interrupt(proc) == 0
    decoder, text, docs = json.JSONDecoder(), text_of(out).strip(), []
    while text:
        try:
            doc, end = decoder.raw_decode(text)
        except json.JSONDecodeError:
            break  # the last document may be cut short by the interrupt
        docs.append(doc)
        text = text[end:].strip()
    assert len(docs) >= 2 and all(set(doc) >= {"slots", "queue", "running"} for doc in docs)
    for args in (["--interval", "1"], ["--watch", "--interval", "0"],
                 ["--watch", "--interval", "soon"]):
        result = project.cli("daemon", "status", *args, check=False)
        assert result.returncode == 2, (args, result.stderr)


def test_status_table_queue_and_daemon_lines(project: Project) -> None:
    project.trigger("t.trigger", "agent-a", ticket="T-2", context={"sleep": 60})
    project.raw_trigger("bad.trigger", b"[]")
    pid = project.start(PARALLEL_DAEMON="true", MAX_CONCURRENT_AGENTS=3)
    wait_until(lambda: project.slots().get("agent-a", {}).get("pid"), what="agent-a's pid")
    wait_until(lambda: project.archived("invalid"), what="bad.trigger archived")
    text = project.cli("daemon", "status").stdout
    header = text.splitlines()[0].split()
    assert header == ["AGENT", "STATUS", "PID", "TICKET", "ELAPSED", "DOING", "/", "LAST", "LOG",
                      "LINE"]
    assert "queue: 0 pending, 1 running, 0 done, 0 failed, 1 invalid" in text
    assert re.search(rf"daemon: running, pid {pid}, up [\dhms]+, parallel mode, limit 3", text)
    containment = json.loads(project.paths.state_file.read_text())["containment"]
    assert f"\ncontainment: {containment.removeprefix('containment: ')}\n" in text + "\n", text
    doc = json.loads(project.cli("daemon", "status", "--json", check=False).stdout)
    assert doc["containment"] == containment
    wait_until(lambda: json.loads(project.cli("daemon", "status", "--json").stdout)["counters"]
               == {"invalid": 1, "spawned": 1}, what="the counters of one run and one rejection")


def test_status_of_a_damaged_state_file_shows_what_it_can(project: Project) -> None:
    project.paths.ensure()
    project.paths.state_file.write_text(json.dumps({
        "mode": 5, "max_concurrent": "two", "agent_program": "/bin/agent",
        "containment": ["cgroup"], "counters": "many"}))
    result = project.cli("daemon", "status", "--json", check=False)
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["mode"], doc["max_concurrent"], doc["agent_program"]) == (None, None, "/bin/agent")
    assert doc["containment"] is None and doc["counters"] == {}
    assert "containment:" not in project.cli("daemon", "status", check=False).stdout


# -- logs ------------------------------------------------------------------------------------


def test_logs_of_an_agent_a_ticket_and_a_run(project: Project) -> None:
    project.trigger("t1.trigger", "agent-a", ticket="T-1", context={"output": 5000})
    project.trigger("t2.trigger", "agent-a", ticket="T-2", context={"exit": 3})
    project.trigger("t3.trigger", "agent-b", ticket="T-1")
    project.start(PARALLEL_DAEMON="true")
    project.wait_archived(3)
    project.stop()
    first, second = (project.result(name) for name in ("t1.trigger", "t2.trigger"))
    Path(first["log"]).write_text("first run\n" + Path(first["log"]).read_text())
    Path(second["log"]).write_text("second run\n")  # written last: newest even in one second
    latest = project.cli("logs", "agent-a")
    assert latest.stdout == "second run\n" and second["log"] in latest.stderr
    assert project.cli("logs", "agent-a", "--ticket", "T-1").stdout.startswith("first run\n")
    assert project.cli("logs", "--run", first["run_id"]).stdout.startswith("first run\n")
    assert project.cli("logs", "agent-a", "--run", second["run_id"]).stdout == "second run\n"
    assert project.cli("logs", "agent-a", "-n", "1", "--ticket", "T-1").stdout == "THE END\n"
    daemon = project.cli("logs", "--daemon", "-n", "3").stdout.splitlines()
    assert len(daemon) == 3 and any("SHUTDOWN" in line for line in daemon)


def test_logs_pick_the_newest_by_start_second_then_mtime_and_read_gzip(project: Project) -> None:
    logs = project.paths.logs
    logs.mkdir(parents=True)
    older = logs / run_log_name("dev", 1_700_000_000)
    newer = logs / run_log_name("dev", 1_700_000_100, "000001")
    same_second = logs / run_log_name("dev", 1_700_000_100, "000002")
    other = logs / run_log_name("dev-2", 1_800_000_000)
    for path, text in ((older, "older\n"), (newer, "newer\n"), (same_second, "same second\n"),
                       (other, "other agent\n")):
        path.write_text(text)
    os.utime(newer, (time.time(), time.time()))
    os.utime(same_second, (time.time() - 100, time.time() - 100))
    assert project.cli("logs", "dev").stdout == "newer\n"
    packed = logs / (run_log_name("dev", 1_900_000_000) + ".gz")
    packed.write_bytes(gzip.compress(b"line 1\nline 2\nline 3\n"))
    assert project.cli("logs", "dev").stdout == "line 1\nline 2\nline 3\n"
    assert project.cli("logs", "dev", "-n", "2").stdout == "line 2\nline 3\n"
    compressed = project.cli("logs", "--run", packed.name.removesuffix(".log.gz"), "-f")
    assert compressed.stdout == "line 1\nline 2\nline 3\n" and "nothing to follow" in compressed.stderr


def test_logs_into_a_reader_that_stops_early_exits_quietly(project: Project) -> None:
    project.paths.logs.mkdir(parents=True)
    (project.paths.logs / run_log_name("dev", 1_700_000_000)).write_text("line\n" * 200_000)
    proc = subprocess.Popen([sys.executable, "-m", "starforge_daemon", "--project-dir",
                             str(project.root), "logs", "dev"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout and proc.stderr
    assert proc.stdout.readline() == b"line\n"
    proc.stdout.close()  # what `| head -1` does
    assert proc.wait(timeout=30) == 0
    assert b"Error" not in proc.stderr.read()
    proc.stderr.close()


def test_logs_bad_arguments(project: Project) -> None:
    project.paths.logs.mkdir(parents=True)
    (project.paths.logs / run_log_name("dev", 1_700_000_000)).write_text("x\n")
    exit_2 = [(), ("dev", "--daemon"), ("--daemon", "--run", "x"), ("--run", "../etc/passwd"),
              ("--run", "dev-1700000000-abc123", "--ticket", "1"), ("dev", "-n", "-1"),
              ("other", "--run", "dev-1700000000-abc123")]
    for args in exit_2:
        result = project.cli("logs", *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
    exit_1 = {("nobody",): "no run log of agent nobody", ("--daemon",): "no event log yet",
              ("--run", "dev-1-aaaaaa"): "no log for run dev-1-aaaaaa",
              ("dev", "--ticket", "9"): "no run of agent dev for ticket 9"}
    for args, message in exit_1.items():
        result = project.cli("logs", *args, check=False)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)


def test_logs_follow_prints_what_is_appended_until_ctrl_c(project: Project) -> None:
    project.paths.logs.mkdir(parents=True)
    log = project.paths.logs / run_log_name("dev", int(time.time()))
    log.write_text("first\n")
    with background(project, "logs", "dev", "-f") as (proc, out):
        wait_until(lambda: text_of(out) == "first\n", what="the log so far")
        with open(log, "a") as file:
            file.write("second\n")
        wait_until(lambda: text_of(out) == "first\nsecond\n", what="the appended line")
        log.write_text("cut\n")  # truncated, as LOG_MAX_BYTES does: read again from its start
        wait_until(lambda: text_of(out).endswith("second\ncut\n"), what="the cut-back log")
        assert interrupt(proc) == 0


def test_logs_follow_the_daemon_log_across_rotation(project: Project) -> None:
    project.start()
    log = project.paths.daemon_log
    lines_before = len(log.read_text().splitlines())
    with background(project, "logs", "--daemon", "-f", "-n", "1") as (proc, out):
        wait_until(lambda: text_of(out).endswith("\n"), what="the last line, then following")
        assert len(text_of(out).splitlines()) == 1 < lines_before
        project.trigger("before.trigger", "agent-a")
        wait_until(lambda: "FINISH" in text_of(out) and "before.trigger" in text_of(out),
                   what="new events")
        os.replace(log, log.with_name("daemon.log.moved"))  # what logrotate does
        wait_until(log.exists, what="the daemon reopened daemon.log at its next sweep")
        project.trigger("after.trigger", "agent-b")
        wait_until(lambda: re.search(r"FINISH agent=agent-b", text_of(out)),
                   what="events written to the new daemon.log")
        assert interrupt(proc) == 0


def test_logs_follow_a_running_agent(project: Project) -> None:
    project.trigger("t.trigger", "agent-a", context={"output": 8192, "sleep": 60})
    project.start()
    wait_until(lambda: project.slots().get("agent-a", {}).get("pid"), what="agent-a running")
    with background(project, "logs", "agent-a", "--follow") as (proc, out):
        wait_until(lambda: text_of(out).endswith("THE END\n"), what="the agent's output")
        assert proc.poll() is None, "still following"
        assert interrupt(proc) == 0


# -- report ----------------------------------------------------------------------------------


def test_report_from_a_real_history(project: Project, tmp_path: Path) -> None:
    project.trigger("ok1.trigger", "agent-a", ticket=1)
    project.trigger("ok2.trigger", "agent-a", ticket=2, context={"sleep": 0.3})
    project.trigger("bad.trigger", "agent-b", ticket=3, context={"exit": 3})
    project.trigger("slow.trigger", "agent-c", ticket=4, context={"sleep": 30})
    project.start(PARALLEL_DAEMON="true", AGENT_TIMEOUT=1)
    project.wait_archived(4)
    doc = json.loads(project.cli("report", "--format", "json").stdout)
    agents = {entry["agent"]: entry for entry in doc["agents"]}
    assert (agents["agent-a"]["runs"], agents["agent-a"]["succeeded"]) == (2, 2)
    assert agents["agent-b"]["failed"] == 1 and agents["agent-c"]["timed_out"] == 1
    assert agents["agent-a"]["median_s"] > 0 and agents["agent-a"]["runs_per_hour"] > 0
    assert doc["total"]["runs"] == 4 and doc["history"] == ".claude/daemon/runs.jsonl"
    assert doc["total"]["cpu_seconds"] > 0 and doc["total"]["peak_memory_bytes"] > 0
    bad = project.result("bad.trigger")
    assert {run["log"] for run in doc["failed"]} == {bad["log"],
                                                     project.result("slow.trigger")["log"]}
    output = tmp_path / "report.md"
    markdown = project.cli("report", "--since", "1h", "--output", str(output))
    assert output.read_text() == markdown.stdout
    assert "4 runs in `.claude/daemon/runs.jsonl` that ended in the last 1h" in markdown.stdout
    assert f"`{bad['log']}`" in markdown.stdout.split("## Failed runs")[1]
    assert "## Slowest runs" in markdown.stdout and "agent-c" in markdown.stdout


def test_report_without_history_and_bad_options(project: Project, tmp_path: Path) -> None:
    result = project.cli("report")
    assert "No runs in `.claude/daemon/runs.jsonl`." in result.stdout
    assert json.loads(project.cli("report", "--format", "json").stdout)["total"]["runs"] == 0
    for args, message in ((["--since", "5x"], "not a duration"), (["--since", "0m"], "duration"),
                          (["--format", "pdf"], "'pdf' is not one of"),
                          (["--output", str(tmp_path)], "is a directory")):
        bad = project.cli("report", *args, check=False)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    unwritable = project.cli("report", "--output", str(tmp_path / "no" / "such" / "r.md"),
                             check=False)
    assert unwritable.returncode == 1 and "cannot write" in unwritable.stderr
