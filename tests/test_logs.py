"""Agent log upkeep: retention, compression, per-agent cap, and the cap on a runaway writer."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest
from conftest import Project, wait_until

from starforge_daemon.core.runids import RunIds, agent_of, parse_run_id
from starforge_daemon.daemon import logupkeep
from starforge_daemon.daemon.logupkeep import LogPolicy, LogUpkeep, tidy

HOUR = 3600.0
DAY = 24 * HOUR


def make_log(folder: Path, agent: str, age: float, size: int, now: float,
             tagged: bool = True) -> Path:
    """A finished run's log; ``tagged=False`` names it the StarForge docs' way, no hex tag."""
    stamp = int(now - age)
    tag = f"-{os.urandom(3).hex()}" if tagged else ""
    path = folder / f"{agent}-{stamp}{tag}.log"
    path.write_bytes(b"line\n" * (size // 5))
    os.utime(path, (now - age, now - age))
    return path


def test_agent_names_are_read_from_run_log_names() -> None:
    assert agent_of("junior-dev-a-1761368400-1a2b3c.log") == "junior-dev-a"
    assert agent_of("junior-dev-a-1761368400-1a2b3c.log.gz") == "junior-dev-a"
    assert agent_of("junior-dev-a-1729845600.log") == "junior-dev-a"
    assert agent_of("junior-dev-a-1729845600.log.gz") == "junior-dev-a"
    assert agent_of("junior-dev-a-1729845600-123456.log") == "junior-dev-a"
    assert agent_of("qa-1-1729845600.log") == "qa-1"
    assert agent_of("daemon.log") is None
    assert agent_of("notes-x-y.log") is None
    assert agent_of("notes-2.log") is None


def test_a_run_id_is_never_issued_twice_in_a_second() -> None:
    tokens = iter(["abc123", "abc123", "abc123", "def456", "abc123"])
    run_ids = RunIds(lambda: next(tokens))
    first = run_ids.new("qa", 1_796_000_000.2)
    second = run_ids.new("qa", 1_796_000_000.9)  # the same token drawn twice more: redrawn
    assert (first, second) == ("qa-1796000000-abc123", "qa-1796000000-def456")
    assert run_ids.new("qa", 1_796_000_001.0) == "qa-1796000001-abc123"  # a new second
    assert parse_run_id(second) is not None and parse_run_id(second).agent == "qa"


def test_old_logs_deleted_day_old_compressed_fresh_kept(tmp_path: Path) -> None:
    now = time.time()
    policy = LogPolicy(max_bytes_per_agent=10**9, retention_seconds=7 * DAY,
                       compress_after_seconds=DAY)
    expired = make_log(tmp_path, "a", 8 * DAY, 100, now)
    stale = make_log(tmp_path, "a", 2 * DAY, 1000, now)
    fresh = make_log(tmp_path, "a", HOUR, 100, now)
    running = make_log(tmp_path, "b", 9 * DAY, 100, now)
    (tmp_path / "daemon.log").write_text("events\n")
    done = tidy(tmp_path, policy, now, in_use=[str(running)])
    assert (done.deleted, done.compressed) == (1, 1)
    assert not expired.exists() and fresh.exists() and running.exists()
    packed = stale.with_name(stale.name + ".gz")
    assert not stale.exists() and packed.exists()
    assert gzip.decompress(packed.read_bytes()) == b"line\n" * 200
    assert abs(packed.stat().st_mtime - (now - 2 * DAY)) < 1
    assert (tmp_path / "daemon.log").exists()


def test_seed_named_logs_are_expired_compressed_and_capped_like_the_daemons(
        tmp_path: Path) -> None:
    now = time.time()
    policy = LogPolicy(max_bytes_per_agent=2500, retention_seconds=7 * DAY,
                       compress_after_seconds=DAY)
    expired = make_log(tmp_path, "junior-dev-a", 8 * DAY, 100, now, tagged=False)
    stale = make_log(tmp_path, "junior-dev-a", 2 * DAY, 100, now, tagged=False)
    over_cap = make_log(tmp_path, "junior-dev-b", 5 * HOUR, 2000, now, tagged=False)
    newer = make_log(tmp_path, "junior-dev-b", HOUR, 2000, now)
    done = tidy(tmp_path, policy, now, in_use=[])
    assert (done.deleted, done.compressed) == (2, 1)
    assert not expired.exists() and not stale.exists()
    assert stale.with_name(stale.name + ".gz").exists()
    assert not over_cap.exists() and newer.exists(), "the older log of the pair goes first"


def test_each_agent_is_capped_oldest_first(tmp_path: Path) -> None:
    now = time.time()
    policy = LogPolicy(max_bytes_per_agent=2500, retention_seconds=7 * DAY,
                       compress_after_seconds=7 * DAY)
    logs = [make_log(tmp_path, "a", age * HOUR, 1000, now) for age in (5, 4, 3, 2, 1)]
    other = make_log(tmp_path, "b", 6 * HOUR, 1000, now)
    tidy(tmp_path, policy, now, in_use=[])
    assert [log.exists() for log in logs] == [False, False, False, True, True]
    assert other.exists()


def test_an_agent_far_over_its_cap_loses_its_oldest_logs_a_batch_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logupkeep, "OLDEST_BATCH", 3)  # the pass must look again, twice
    now = time.time()
    policy = LogPolicy(max_bytes_per_agent=2500, retention_seconds=7 * DAY,
                       compress_after_seconds=7 * DAY)
    logs = [make_log(tmp_path, "a", age * 60, 1000, now) for age in range(9, 0, -1)]
    other = make_log(tmp_path, "b", 10 * HOUR, 1000, now)
    done = tidy(tmp_path, policy, now, in_use=[str(logs[0])])
    assert (done.deleted, done.compressed) == (6, 0)
    assert [log.exists() for log in logs] == [True] + [False] * 6 + [True, True]
    assert other.exists()


def test_a_runaway_writer_is_capped_and_its_last_output_kept(project: Project) -> None:
    project.trigger("t.trigger", "chatty", context={"output": 1_000_000})
    project.start(LOG_MAX_BYTES=65536)
    project.wait_archived(1)
    log = Path(project.result("t.trigger")["log"])
    data = log.read_bytes()
    assert len(data) <= 65536
    assert b"output over LOG_MAX_BYTES dropped" in data
    assert data.endswith(b"THE END\n")
    assert project.result("t.trigger")["outcome"] == "succeeded"


def test_a_run_that_wrote_past_its_cap_and_goes_on_is_cut_while_it_runs(
        project: Project) -> None:
    """A log read as text is first looked at half a second into its run: what the agent wrote
    before is cut back then, not only at its end."""
    project.trigger("t.trigger", "chatty", context={"output": 1_000_000, "gate": "go"})
    project.start(LOG_MAX_BYTES=65536)
    wait_until(lambda: [log for log in project.paths.logs.glob("chatty-*.log")
                        if b"THE END" in log.read_bytes()], what="the agent wrote it all")
    (log,) = project.paths.logs.glob("chatty-*.log")
    wait_until(lambda: log.stat().st_size <= 65536, what="the log cut back to its cap")
    assert b"output over LOG_MAX_BYTES dropped" in log.read_bytes()
    assert project.all_archived() == {}  # the run still goes: the gate is not there yet
    project.open_gate("go")
    project.wait_archived(1)
    assert log.read_bytes().endswith(b"THE END\n")


def test_daemon_tidies_agent_logs_at_start(project: Project) -> None:
    project.paths.ensure()
    now = time.time()
    expired = make_log(project.paths.logs, "a", 8 * DAY, 100, now)
    stale = make_log(project.paths.logs, "a", 2 * DAY, 100, now)
    project.start()
    wait_until(lambda: not expired.exists() and not stale.exists(), what="upkeep ran")
    assert stale.with_name(stale.name + ".gz").exists()
    wait_until(lambda: "LOGS" in project.log(), what="upkeep logged")


def test_daemon_log_rotates_by_size_and_follows_outside_rotation(project: Project) -> None:
    log = project.paths.daemon_log
    project.start(DAEMON_LOG_MAX_BYTES=4096, PARALLEL_DAEMON="true")
    for number in range(30):
        project.trigger(f"t{number:02}.trigger", f"agent-{number}")
    project.wait_archived(30)
    wait_until(lambda: log.with_name("daemon.log.1").exists(), what="size rotation")
    assert log.stat().st_size < 4096 + 1024
    moved = log.with_name("daemon.log.moved")
    os.replace(log, moved)  # what logrotate does
    wait_until(log.exists, what="the daemon reopened daemon.log at its next sweep")
    project.trigger("after.trigger", "agent-x")
    project.wait_archived(31)
    wait_until(lambda: log.exists() and "after.trigger" in log.read_text(),
               what="events in the new daemon.log")


def test_a_sweep_passes_over_the_logs_only_when_something_changed_or_fell_due(
        tmp_path: Path) -> None:
    class Log:
        def __init__(self) -> None:
            self.lines: list[dict[str, object]] = []

        def info(self, event: str, **fields: object) -> None:
            self.lines.append({"event": event, **fields})

    now = time.time()
    log = Log()
    upkeep = LogUpkeep(tmp_path, LogPolicy(10**9, 7 * DAY, DAY), log)
    young = make_log(tmp_path, "a", HOUR, 100, now)  # gzipped when a day old: due in 23 h
    upkeep.start_pass(now, list)
    upkeep.join(timeout=10)
    os.utime(young, (now - 2 * DAY, now - 2 * DAY))  # old now, but the folder did not change
    upkeep.start_pass(now + 60, list)
    upkeep.join(timeout=10)
    assert young.exists() and log.lines == [], "nothing changed and nothing fell due"
    upkeep.start_pass(now + 23 * HOUR + 1, list)
    upkeep.join(timeout=10)
    assert not young.exists() and young.with_name(young.name + ".gz").exists()
    assert log.lines == [{"event": "LOGS", "msg": "agent logs tidied", "deleted": 0,
                          "compressed": 1}]


def test_a_failed_upkeep_pass_logs_the_file_and_the_reason(tmp_path: Path) -> None:
    class Log:
        def __init__(self) -> None:
            self.errors: list[dict[str, object]] = []

        def error(self, event: str, **fields: object) -> None:
            self.errors.append({"event": event, **fields})

    log = Log()
    missing = tmp_path / "gone"
    upkeep = LogUpkeep(missing, LogPolicy(4096, DAY, HOUR), log)
    upkeep.start_pass(time.time(), list)
    upkeep.join(timeout=10)
    assert log.errors == [{"event": "ERROR", "msg": "log upkeep failed",
                           "error": "No such file or directory", "file": str(missing)}]
