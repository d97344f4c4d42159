"""More filesystem faults on real mounts, each lifted while a run is in flight: a full ext4
filesystem on a loop device, and the whole ``.claude`` read-only. The daemon stays up, holds
new runs, lets the run in flight finish, resumes by itself and runs every trigger once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, wait_until
from test_disk_faults import _mount, _unmount, fill, mounts_allowed, read_only

__all__ = ["mounts_allowed"]  # the fixture, used by name


def _loop_devices(image: Path) -> list[str]:
    found = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                           timeout=30).stdout
    return [line.split(":", 1)[0] for line in found.splitlines() if line]


@contextlib.contextmanager
def ext4_image(folder: Path, size_mib: int) -> Iterator[None]:
    """A fresh ext4 filesystem of ``size_mib`` MiB (no blocks reserved for root) mounted on
    ``folder`` through a loop device; unmounted, the loop device detached and the image
    deleted at the end, whatever happens."""
    if shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
        pytest.skip("mkfs.ext4 and losetup are needed for the ext4 disk-full test")
    image = folder.with_name(f"{folder.name}.ext4")
    with open(image, "wb") as file:
        file.truncate(size_mib << 20)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True,
                       capture_output=True, timeout=60)
        try:
            _mount("-o", "loop", str(image), str(folder))
        except subprocess.CalledProcessError as error:
            pytest.skip(f"cannot mount a loop device here: {error.stderr.decode().strip()}")
        try:
            yield
        finally:
            _unmount(folder)
    finally:
        for device in _loop_devices(image):  # mount -o loop detaches on unmount; make sure
            subprocess.run(["losetup", "-d", device], capture_output=True, timeout=30)
        wait_until(lambda: not _loop_devices(image), 10, "the loop device detached")
        image.unlink()


def test_a_full_ext4_filesystem_holds_runs_and_resumes_when_space_returns(
        project: Project, mounts_allowed: None) -> None:
    claude = project.paths.root / ".claude"
    with ext4_image(claude, 8):
        try:
            project.start()
            pid = project.daemon_pid()
            project.trigger("a.trigger", context={"gate": "GATE", "exit": 5})
            wait_until(lambda: project.started() == ["a.trigger"], 15, "a's run")
            project.cli("queue", "pause")
            names = ["b.trigger", "c.trigger", "d.trigger"]
            for name in names:
                project.trigger(name)
            filler = fill(claude)
            project.cli("queue", "resume", check=False)  # its pause file cannot be removed
            project.open_gate("GATE")  # a ends while the disk is full
            wait_until(lambda: project.journal("end"), 15, "a's agent ended")
            wait_until(lambda: "refuse writes" in project.log(), 15, "the hold in daemon.log")
            assert project.started() == ["a.trigger"], "nothing new started on a full disk"
            assert os.path.exists(f"/proc/{pid}")
            filler.unlink()  # space returns: no restart, no command needed
            project.cli("queue", "resume")
            archived = project.wait_archived(1 + len(names), timeout=60)
            assert sorted(project.started()) == ["a.trigger", *names], "each ran once"
            assert archived == {"a.trigger": "failed", **dict.fromkeys(names, "done")}
            assert project.result("a.trigger")["exit_code"] == 5
            assert project.daemon_pid() == pid
        finally:
            if project.paths.pid_file.exists():
                project.cli("daemon", "stop", check=False)


def test_a_read_only_claude_folder_holds_runs_and_resumes_when_writable(
        project: Project, mounts_allowed: None) -> None:
    claude = project.paths.root / ".claude"
    project.start()
    pid = project.daemon_pid()
    project.trigger("a.trigger", context={"gate": "GATE", "exit": 6})
    wait_until(lambda: project.started() == ["a.trigger"], 15, "a's run")
    project.cli("queue", "pause")
    names = ["b.trigger", "c.trigger"]
    for name in names:
        project.trigger(name)
    with read_only(claude):
        project.cli("queue", "resume", check=False)  # its pause file cannot be removed
        project.open_gate("GATE")  # a ends while nothing can be written
        wait_until(lambda: project.journal("end"), 15, "a's agent ended")
        wait_until(lambda: "refuse writes" in project.log(), 15, "the hold in daemon.log")
        assert project.started() == ["a.trigger"] and project.all_archived() == {}
        assert os.path.exists(f"/proc/{pid}")
    project.cli("queue", "resume")
    archived = project.wait_archived(1 + len(names), timeout=60)
    assert sorted(project.started()) == ["a.trigger", *names], "each ran once"
    assert archived == {"a.trigger": "failed", **dict.fromkeys(names, "done")}
    assert project.result("a.trigger")["exit_code"] == 6
    assert project.daemon_pid() == pid
