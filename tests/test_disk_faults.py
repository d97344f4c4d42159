"""Filesystem faults on real mounts: a read-only state folder, a full disk, long names and
planted links. The daemon stays up, holds new runs while its files refuse writes, resumes by
itself when they take them again, and runs every trigger exactly once."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, gone, wait_until


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _unmount(point: Path) -> None:
    if subprocess.run(["umount", str(point)], capture_output=True, timeout=30).returncode:
        subprocess.run(["umount", "-l", str(point)], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only (a read-only bind mount over itself) until the block ends."""
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield
    finally:
        _unmount(folder)


@pytest.fixture
def mounts_allowed(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        pytest.skip(f"mounting is not permitted here ({error}); the disk fault tests need root")
    _unmount(probe)


def starts(project: Project) -> list[str]:
    return project.started()


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its filesystem is full; returns the file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 1):  # then the last partial page too
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_read_only_state_folder_holds_new_runs_until_it_is_writable_again(
        project: Project, mounts_allowed: None) -> None:
    project.start()
    pid = project.daemon_pid()
    project.trigger("a.trigger", context={"gate": "GATE"})
    wait_until(lambda: starts(project) == ["a.trigger"], 15, "a's run")
    with read_only(project.paths.root / ".claude" / "daemon"):
        project.trigger("b.trigger")
        project.trigger("c.trigger")
        project.open_gate("GATE")
        wait_until(lambda: "refuse writes" in project.log(), 15, "the hold in daemon.log")
        assert starts(project) == ["a.trigger"]  # b and c wait: they cannot be journaled
        assert os.path.exists(f"/proc/{pid}")
    project.wait_archived(3, timeout=30)
    assert sorted(starts(project)) == ["a.trigger", "b.trigger", "c.trigger"]
    assert project.archived("done") == ["a.trigger", "b.trigger", "c.trigger"]
    assert project.daemon_pid() == pid
    wait_until(lambda: json.loads(project.cli("daemon", "status", "--json").stdout)
               ["held_back"] is None, 10, "the hold lifted in status")


def test_a_full_disk_loses_nothing_and_runs_nothing_twice(
        project: Project, mounts_allowed: None) -> None:
    claude = project.paths.root / ".claude"
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(claude))
    try:
        project.start()
        pid = project.daemon_pid()
        project.cli("queue", "pause")
        names = [f"t{number}.trigger" for number in range(5)]
        for name in names:
            project.trigger(name)
        filler = fill(claude)
        # the daemon resumes the queue, then cannot save paused.json: the answer is an error
        project.cli("queue", "resume", check=False)
        wait_until(lambda: any(project.paths.running.iterdir()), 10, "a start tried")
        # a trigger is claimed, its journal line refused: it waits, nothing runs or is archived
        assert starts(project) == [] and project.all_archived() == {}
        assert os.path.exists(f"/proc/{pid}")
        filler.unlink()
        project.cli("queue", "resume")
        project.wait_archived(len(names), timeout=60)
        assert sorted(starts(project)) == names  # each ran exactly once
        assert project.archived("done") == names
        assert project.daemon_pid() == pid
    finally:
        if project.paths.pid_file.exists():
            project.cli("daemon", "stop", check=False)
        _unmount(claude)


def test_a_trigger_with_a_name_near_the_limit_is_archived_with_its_result(project: Project) -> None:
    name = "n" * (255 - len(".trigger")) + ".trigger"
    project.start(MAX_RETRIES=1, RETRY_BACKOFF=0)
    temp = project.paths.triggers / ".long.tmp"  # the helper's temp name would pass the limit
    temp.write_text(json.dumps({"to_agent": "agent-a", "context": {"exit": 3}}))
    temp.rename(project.paths.triggers / name)
    project.wait_archived(1)
    [archived] = project.archived("failed")
    assert archived != name and len(archived.encode()) + len(".result.json") <= 255
    result = json.loads((project.paths.triggers / "processed" / "failed" /
                         f"{archived}.result.json").read_text())
    assert result["trigger"] == name and result["outcome"] == "failed"
    assert [attempt["attempt"] for attempt in result["attempts"]] == [1, 2]
    assert starts(project) == [name, name]  # tried twice, as MAX_RETRIES says, no more


def test_a_planted_link_where_a_result_goes_is_never_written_through(project: Project) -> None:
    victim = project.paths.root / "victim.txt"
    victim.write_text("untouched\n")
    done = project.paths.triggers / "processed"
    done.mkdir(parents=True, exist_ok=True)
    (done / "x.trigger.result.json").symlink_to(victim)
    project.start()
    project.trigger("x.trigger")
    project.wait_archived(1)
    assert victim.read_text() == "untouched\n"
    assert project.archived("done") == ["x.1.trigger"]
    assert json.loads((done / "x.1.trigger.result.json").read_text())["trigger"] == "x.trigger"
    with pytest.raises(OSError) as refused:
        os.open(done / "x.trigger.result.json", os.O_WRONLY | os.O_NOFOLLOW)
    assert refused.value.errno == errno.ELOOP


def test_an_exit_the_keeper_could_not_journal_waits_in_it_and_is_recovered(
        project: Project, mounts_allowed: None) -> None:
    project.trigger("t.trigger", context={"gate": "GATE", "exit": 4})
    project.start()
    wait_until(lambda: starts(project) == ["t.trigger"], 15, "the run")
    daemon = project.daemon_pid()
    os.kill(daemon, signal.SIGKILL)  # only the keeper is left to record the exit
    wait_until(lambda: gone(daemon), 5, "the daemon gone")
    runs = project.paths.runs
    journals = lambda: "".join(path.read_text() for path in runs.glob("*.jsonl"))  # noqa: E731
    with read_only(runs):
        project.open_gate("GATE")
        wait_until(lambda: project.journal("end"), 10, "the agent's end")
        assert '"exit"' not in journals()  # the disk refused it
    wait_until(lambda: '"exit"' in journals(), 10, "the exit written once the disk took it")
    project.start()
    project.wait_archived(1)
    result = project.result("t.trigger")
    assert (result["outcome"], result["exit_code"]) == ("failed", 4), result


def test_a_slots_file_replaced_by_a_folder_keeps_the_state_file_saved(project: Project) -> None:
    project.trigger("a.trigger")
    project.start()
    project.wait_archived(1)
    wait_until(lambda: "agent-a" in project.slots(), 10, "the slot saved")
    slots = project.paths.slots_file
    slots.unlink()
    slots.mkdir()  # every save of the slots now fails
    project.trigger("b.trigger", "agent-b")
    project.wait_archived(2)
    state = project.paths.state_file

    def counted() -> bool:
        return json.loads(state.read_text())["counters"].get("succeeded") == 2

    wait_until(counted, 10, "daemon-state.json saved with both runs")
    errors = [line for line in project.log().splitlines() if "cannot save state" in line]
    assert len(errors) == 1, errors  # said once for the spell, not every second
    slots.rmdir()
    wait_until(lambda: slots.is_file() and "agent-b" in project.slots(), 10,
               "the slots saved again")
