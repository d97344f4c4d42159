"""The C extension that spawns a run's first process straight into its cgroup: it does what
``os.posix_spawn`` does, with the child in the cgroup from its first instruction.

CI installs with a compiler and sets ``STARFORGE_REQUIRE_NATIVE_SPAWN=1``: the extension must
then be built and used, not silently replaced by the migration.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from starforge_daemon.runtime.local import cgroup_spawn, cgroups, containment, processes

HOST = containment.detect(Path(__file__).parent, force_sweep=False)
NATIVE = cgroup_spawn.native_spawn_usable()
needs_native = pytest.mark.skipif(
    not NATIVE or HOST.mechanism != "cgroup",
    reason="the extension is not built (no C compiler at install) or no writable cgroup2")
GLIBC_SIGNALS = 0b11 << 31
PROBE = """
import json, os, sys
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "own_session": os.getsid(0) == os.getpid(),
    "ignored": status["SigIgn"].strip(), "blocked": status["SigBlk"].strip(),
    "cwd": os.getcwd(), "env": os.environ.get("PROBE"), "stdin": sys.stdin.read(),
    "fds": sorted(os.listdir("/proc/self/fd")),
    "cgroup": [line for line in open("/proc/self/cgroup") if line.startswith("0::")][0],
}))
"""


@pytest.fixture
def cgroup() -> Iterator[str]:
    """An empty cgroup of the test's own, beside where the daemon's would be; removed after."""
    assert HOST.root is not None
    folder = os.path.join(os.path.dirname(HOST.root), f"starforge-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(folder)
    yield folder
    os.rmdir(folder)  # fails when a test left a process in it


def test_the_extension_is_built_and_used_where_ci_demands_it() -> None:
    if os.environ.get("STARFORGE_REQUIRE_NATIVE_SPAWN") != "1":
        pytest.skip("STARFORGE_REQUIRE_NATIVE_SPAWN=1 is not set (CI sets it)")
    assert NATIVE


def _probe(spawn: Callable[..., int], tmp_path: Path, name: str, **extra: object) -> dict:
    """What the probe child reports of itself, spawned by ``spawn`` as the keeper spawns."""
    (tmp_path / "stdin.txt").write_text("handed in")
    out = tmp_path / f"{name}.json"
    out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    stray = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(stray, True)  # the close action drops it
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        pid = processes.spawn_program(
            [sys.executable, "-c", PROBE], {"PROBE": "value"}, spawn, **extra,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, str(tmp_path / "stdin.txt"), os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_CLOSE, stray)],
            setsid=True, setsigdef=processes.ignored_signals() - {signal.SIGUSR2},
            setsigmask=())
    finally:
        signal.signal(signal.SIGUSR1, previous)
        os.close(out_fd)
        os.close(stray)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    report = json.loads(out.read_text())
    assert str(stray) not in report["fds"]
    return report


@needs_native
def test_the_child_is_what_posix_spawn_makes_but_in_the_cgroup(tmp_path: Path, cgroup: str,
                                                                 ) -> None:
    ignoring_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        native = _probe(cgroup_spawn._clone_spawn.spawn, tmp_path, "native",
                        cgroup=os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY))
        posix = _probe(os.posix_spawn, tmp_path, "posix")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGUSR2, ignoring_usr2)
    # glibc's child leaves glibc's own two signals (32, 33) ignored; ours leaves them alone
    posix["ignored"] = f"{int(posix['ignored'], 16) & ~GLIBC_SIGNALS:016x}"
    in_cgroup = native.pop("cgroup")
    assert in_cgroup.endswith(f"/{os.path.basename(cgroup)}\n")
    assert posix.pop("cgroup") != in_cgroup
    assert native == posix
    assert native["own_session"] and native["env"] == "value" and native["stdin"] == "handed in"
    assert native["blocked"] == "0" * 16  # setsigmask=() emptied the mask
    assert int(native["ignored"], 16) & (1 << (signal.SIGUSR2 - 1))  # kept: not in setsigdef
    assert not int(native["ignored"], 16) & (1 << (signal.SIGUSR1 - 1))  # reset to default


@needs_native
def test_a_failed_spawn_says_why_and_leaves_no_child(cgroup: str) -> None:
    folder = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        spawn = cgroup_spawn._clone_spawn.spawn
        with pytest.raises(FileNotFoundError) as missing:
            spawn("/nonexistent/agent", ["agent"], {}, folder)
        assert missing.value.filename == "/nonexistent/agent"
        with pytest.raises(PermissionError):  # not executable
            spawn(__file__, ["agent"], {}, folder)
        with pytest.raises(FileNotFoundError):  # an open action that fails, before the exec
            spawn("/bin/true", ["true"], {}, folder,
                  file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/nonexistent", os.O_RDONLY, 0)])
        with pytest.raises(ValueError, match="environment variable name"):
            spawn("/bin/true", ["true"], {"A=B": "c"}, folder)
        with pytest.raises(TypeError, match="file action"):
            spawn("/bin/true", ["true"], {}, folder, file_actions=[(99,)])
        root = os.open("/", os.O_RDONLY | os.O_CLOEXEC)
        with pytest.raises(OSError) as refused:  # not a cgroup folder: clone3 refuses
            spawn("/bin/true", ["true"], {}, root)
        os.close(root)
        assert refused.value.filename is None
    finally:
        os.close(folder)
    assert not Path(cgroup, "cgroup.procs").read_text()
    assert not _zombie_children()  # every child that failed before its exec was reaped


def _zombie_children() -> list[int]:
    me, zombies = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = processes.stat_fields(int(pid))
        except OSError:
            continue
        if fields[1].decode() == me and fields[0] == b"Z":
            zombies.append(int(pid))
    return zombies


def test_a_bare_program_name_is_looked_up_in_path_never_in_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = tmp_path / "starforge-test-agent"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):
        processes.spawn_program([agent.name], os.environ)


@needs_native
def test_a_cgroup_killed_before_still_gets_its_runs(tmp_path: Path, cgroup: str) -> None:
    """This kernel kills a child cloned into a cgroup whose ``cgroup.kill`` was written before
    (an agent's shared cgroup, after a run that left processes behind): the extension says so,
    and ``spawn_in`` puts the child in by migration instead."""
    Path(cgroup, "cgroup.kill").write_text("1")
    folder = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as killed:
            cgroup_spawn._clone_spawn.spawn("/bin/true", ["true"], {}, folder)
    finally:
        os.close(folder)
    assert killed.value.errno == errno.ECANCELED and killed.value.filename is None
    assert not _zombie_children()
    held = cgroups.HeldFiles(cgroup)
    try:
        for attempt in range(2):  # the second goes straight to the migration
            out = tmp_path / f"cgroup{attempt}.txt"
            pid = cgroup_spawn.spawn_in(cgroup, ["cat", "/proc/self/cgroup"], os.environ, held,
                                        file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(out),
                                                       os.O_WRONLY | os.O_CREAT, 0o644)])
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
            assert f"/{os.path.basename(cgroup)}\n" in out.read_text()
            assert held.clone_refused
    finally:
        held.close()
