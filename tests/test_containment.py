"""Run containers on real cgroups and real processes: when a run ends, nothing it started remains.

The cgroup tests need a writable cgroup2 hierarchy with ``cgroup.kill`` (root here, in CI too);
they make their cgroups under a temporary folder next to where the daemon would put its own,
and every test checks that no process and no cgroup of it is left.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import wait_until

from starforge_daemon.runtime.local import cgroup_spawn, cgroups, containment, sweep
from starforge_daemon.runtime.local.containment import Containment
from starforge_daemon.runtime.local.run_container import RunContainer

HOSTILE = Path(__file__).with_name("containment_hostile.py")
BURN = Path(__file__).with_name("containment_burn.py")
UNIT = Path(__file__).with_name("containment_unit.py")
SPAWN_DEFAULTS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

HOST = containment.detect(Path(__file__).parent, force_sweep=False)
needs_cgroup = pytest.mark.skipif(
    HOST.mechanism != "cgroup",
    reason=f"no writable cgroup2 hierarchy with cgroup.kill for this user: {HOST.note}")


@dataclass
class Runs:
    """The runs a test starts; on teardown it checks none of them left a process or a cgroup."""

    base: Path
    root: str | None = None  # a cgroup folder holding this test's project folder
    run_ids: list[str] = field(default_factory=list)
    pidfds: list[int] = field(default_factory=list)

    def new_id(self) -> str:
        run_id = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.run_ids.append(run_id)
        return run_id

    def containment(self) -> Containment:
        assert self.root is not None
        return containment.prepare(containment.detect(self.base, root=self.root))

    def start(self, container: RunContainer, *argv: str, env: dict[str, str] | None = None,
              stdout: str = os.devnull) -> int:
        """Start a run's first process as the keeper does, its run id in its environment."""
        environment = {**os.environ, sweep.RUN_ID_ENV: container.run_id, **(env or {})}
        return container.spawn(
            list(argv), environment,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT, 0o644)],
            setsid=True, setsigdef=SPAWN_DEFAULTS, setsigmask=())

    def hostile(self, container: RunContainer, *flags: str) -> tuple[int, dict[str, int]]:
        """Start the hostile tree; its first pid and, once in place, its processes by role."""
        markers = self.base / container.run_id
        markers.mkdir()
        leader = self.start(container, sys.executable, str(HOSTILE), str(markers), *flags)

        def in_place() -> list[str] | None:
            names = [name for name in os.listdir(markers) if not name.startswith(".")]
            return names if len(names) == 2 else None

        names = wait_until(in_place, what="the hostile tree's markers")
        pids = {role: int(pid) for role, pid in (name.split("-") for name in names)}
        assert pids["leader"] == leader
        self.pidfds += [os.pidfd_open(pid) for pid in pids.values()]
        return leader, pids

    def all_exited(self) -> bool:
        """Every process the tests watched has exited (a pidfd turns readable on exit)."""
        return all(select.select([fd], [], [], 0)[0] for fd in self.pidfds)


def reap(pid: int) -> int:
    """Reap a first process the test itself spawned; its wait status."""
    return os.waitpid(pid, 0)[1]


def hierarchy_path(folder: str) -> str:
    """``folder`` as /proc/<pid>/cgroup names it (cgroup2 mounted at its root here)."""
    mount = max((line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()
                 if " - cgroup2 " in line and folder.startswith(line.split()[4])),
                key=lambda fields: len(fields[4]))
    return os.path.normpath(os.path.join(mount[3], os.path.relpath(folder, mount[4])))


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    tracked = Runs(tmp_path)
    if HOST.mechanism == "cgroup":
        assert HOST.root is not None
        root = os.path.join(os.path.dirname(HOST.root), f"starforge-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(root)
        tracked.root = root
    yield tracked
    left = {run_id: sweep.sweep_members(run_id) for run_id in tracked.run_ids}
    for pids in left.values():
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    folders = []
    if tracked.root is not None:
        folders = [folder for folder, _, _ in os.walk(tracked.root, topdown=False)]
        for folder in folders:
            cgroups.kill_all(folder)
        folders = [folder for folder in folders if os.path.basename(folder) in tracked.run_ids]
    for fd in tracked.pidfds:
        os.close(fd)
    assert not any(left.values()), f"processes left behind: {left}"
    assert not folders, f"cgroups left behind: {folders}"


# -- detection ---------------------------------------------------------------------------------


def test_detection_is_forced_to_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert containment.detect(tmp_path, force_sweep=True).mechanism == "sweep"
    monkeypatch.setenv(containment.MODE_ENV, "sweep")
    found = containment.detect(tmp_path)
    assert found.mechanism == "sweep"
    assert f"{containment.MODE_ENV}=sweep" in found.text
    assert "approximate" in found.text


def test_detection_falls_back_where_the_root_is_no_cgroup(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    found = containment.detect(tmp_path, root=str(tmp_path))
    assert (found.mechanism, found.project) == ("sweep", None)
    assert f"{tmp_path} is not a cgroup2 folder" in found.text
    monkeypatch.setenv(containment.ROOT_ENV, str(tmp_path / "missing"))
    assert containment.detect(tmp_path).mechanism == "sweep"
    assert containment.prepare(found) == found


@needs_cgroup
def test_detection_finds_this_hosts_cgroup2(tmp_path: Path) -> None:
    found = containment.detect(tmp_path, force_sweep=False)
    assert found.mechanism == "cgroup"
    assert found.root is not None and found.project is not None
    assert os.path.dirname(found.project) == found.root
    assert found.text.startswith(f"containment: cgroup v2 at {found.project} (")
    assert set(found.controllers) <= {"memory", "pids"}
    if len(found.controllers) < 2:
        assert "limits unavailable: " in found.text and found.note


def test_project_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    (tmp_path / "a b.c").mkdir()
    (tmp_path / "other" / "a b.c").mkdir(parents=True)
    first = containment.project_id(tmp_path / "a b.c")
    assert first == containment.project_id(str(tmp_path / "a b.c" / "."))
    assert first != containment.project_id(tmp_path / "other" / "a b.c")
    assert first.startswith("a_b_c-")


@needs_cgroup
def test_a_delegated_unit_holds_the_daemon_in_a_leaf_beside_the_runs(runs: Runs) -> None:
    unit = runs.root  # a cgroup marked as systemd marks a unit with Delegate=yes
    assert unit is not None
    try:
        os.setxattr(unit, "trusted.delegate", b"1")
    except OSError as error:
        pytest.skip(f"cannot mark a cgroup as delegated here: {error.strerror}")
    run_id = runs.new_id()
    out = runs.base / "unit.json"
    env = {key: value for key, value in os.environ.items()
           if key not in (containment.ROOT_ENV, containment.MODE_ENV)}
    pid = cgroup_spawn.spawn_in(
        unit, [sys.executable, str(UNIT), str(runs.base), run_id], env,
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT, 0o644)])
    assert os.waitstatus_to_exitcode(reap(pid)) == 0
    report = json.loads(out.read_text())

    leaf, project = f"{unit}/daemon", f"{unit}/runs/{containment.project_id(runs.base)}"
    assert report["containment"]["leaf"] == leaf
    assert report["containment"]["project"] == project
    assert report["text"].startswith(f"containment: cgroup v2 at {project} (")
    for seen in (report["after_prepare"], report["after_spawn"]):
        assert f"0::{hierarchy_path(leaf)}\n" in seen
    assert f"0::{hierarchy_path(f'{project}/{run_id}')}\n" in report["run_saw"]
    assert report["removed"]


# -- cgroups -----------------------------------------------------------------------------------


@needs_cgroup
def test_prepare_makes_the_project_folder(runs: Runs) -> None:
    prepared = runs.containment()
    assert prepared.mechanism == "cgroup"
    assert prepared.project == os.path.join(str(runs.root), containment.project_id(runs.base))
    assert os.path.isfile(os.path.join(prepared.project, "cgroup.kill"))
    enabled = Path(prepared.project, "cgroup.subtree_control").read_text().split()
    assert set(prepared.controllers) == {name for name in enabled if name in ("memory", "pids")}
    assert containment.prepare(prepared) == prepared  # a second start finds the same


@needs_cgroup
@pytest.mark.parametrize("spawn_in", [cgroup_spawn.spawn_in, cgroup_spawn.spawn_by_migration],
                         ids=["clone3-where-built", "migration"])
def test_spawn_in_places_the_child_before_it_execs(runs: Runs,
                                                   spawn_in: Callable[..., int]) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    home = Path("/proc/self/cgroup").read_text()
    out = runs.base / "cgroup.txt"
    pid = spawn_in(run.cgroup, ["cat", "/proc/self/cgroup"], os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT, 0o644)])
    assert os.waitstatus_to_exitcode(reap(pid)) == 0
    assert f"0::{hierarchy_path(run.cgroup)}\n" in out.read_text()
    assert Path("/proc/self/cgroup").read_text() == home  # the spawner is home
    with pytest.raises(FileNotFoundError):
        spawn_in(run.cgroup, ["/nonexistent/agent"], os.environ)
    assert Path("/proc/self/cgroup").read_text() == home  # also when the spawn failed
    assert cgroups.kill_all(run.cgroup).removed


@needs_cgroup
def test_kill_all_leaves_nothing_of_a_hostile_tree(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader, pids = runs.hostile(run)
    assert sorted(cgroups.cgroup_members(run.cgroup)) == sorted(pids.values())
    assert os.getsid(pids["orphan"]) != os.getsid(leader)  # another session
    assert cgroups.populated(run.cgroup)

    result = cgroups.kill_all(run.cgroup)

    assert result == cgroups.KillResult(left=(), removed=True)
    assert not os.path.exists(run.cgroup)
    assert os.WTERMSIG(reap(leader)) == signal.SIGKILL
    wait_until(runs.all_exited, what="the tree's processes to exit")
    assert sweep.sweep_members(run.run_id) == []
    assert cgroups.kill_all(run.cgroup).removed  # a second kill finds nothing to do


@needs_cgroup
def test_signal_all_reaches_every_session(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader, _ = runs.hostile(run, "--obedient")
    assert run.signal(signal.SIGTERM) == 2
    assert os.WTERMSIG(reap(leader)) == signal.SIGTERM
    wait_until(lambda: not cgroups.populated(run.cgroup), what="the run to empty")
    wait_until(runs.all_exited, what="the tree's processes to exit")
    assert cgroups.kill_all(run.cgroup).removed


@needs_cgroup
def test_end_accounts_for_an_orphaned_burner(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader = runs.start(run, sys.executable, str(BURN), "0.3", "32", "--orphan")
    assert os.waitstatus_to_exitcode(reap(leader)) == 0  # before its grandchild burnt anything
    wait_until(lambda: not cgroups.populated(run.cgroup), what="the burner to finish")

    ended = run.end(session=leader)

    assert (ended.left, ended.removed) == ((), True)
    assert not os.path.exists(run.cgroup)
    usage = ended.usage
    assert usage.cpu_seconds is not None and usage.cpu_seconds >= 0.3
    assert not usage.approximate
    if usage.peak_memory is None:
        assert "memory controller not enabled" in usage.note
        assert usage.oom_kills is None
    else:
        assert usage.peak_memory >= 32 << 20
        assert usage.oom_kills == 0


@needs_cgroup
def test_end_kills_what_the_run_left(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader, pids = runs.hostile(run)
    os.kill(leader, signal.SIGKILL)  # the first process is gone; the orphan carries on
    reap(leader)
    assert cgroups.cgroup_members(run.cgroup) == [pids["orphan"]]

    ended = run.end(session=leader)

    assert (ended.left, ended.removed) == ((), True)
    wait_until(runs.all_exited, what="the orphan to exit")


@needs_cgroup
def test_sigkill_empties_the_run_and_keeps_its_accounting(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader, _ = runs.hostile(run)
    assert run.signal(signal.SIGKILL) == 2  # the daemon's escalation after the grace period
    assert os.WTERMSIG(reap(leader)) == signal.SIGKILL
    wait_until(lambda: not cgroups.populated(run.cgroup), what="the run to empty")
    wait_until(runs.all_exited, what="the tree's processes to exit")
    assert os.path.isdir(run.cgroup)  # the keeper ends the run: reads its usage, removes it

    ended = run.end(session=leader)

    assert ended.removed and ended.usage.cpu_seconds
    assert run.signal(signal.SIGTERM) == 0  # a run that is over: nothing to signal


@needs_cgroup
def test_limits_apply_only_with_their_controllers(runs: Runs) -> None:
    prepared = runs.containment()
    run = prepared.run(runs.new_id())
    assert run.cgroup is not None
    skipped = run.create({"memory.max": str(256 << 20), "pids.max": "64"})
    for name, value in (("memory", str(256 << 20)), ("pids", "64")):
        if name in prepared.controllers:
            assert Path(run.cgroup, f"{name}.max").read_text().strip() == value
        else:
            assert any(note.startswith(f"{name}.max=") for note in skipped)
    assert cgroups.kill_all(run.cgroup).removed
    with pytest.raises(ValueError):
        cgroups.create_run_cgroup(os.path.join(run.cgroup, ".."))


@needs_cgroup
def test_remove_stale_keeps_runs_in_flight(runs: Runs) -> None:
    prepared = runs.containment()
    kept, stale = prepared.run(runs.new_id()), prepared.run(runs.new_id())
    assert kept.cgroup is not None and stale.cgroup is not None
    kept.create()
    stale.create()
    leader, _ = runs.hostile(stale)

    assert containment.remove_stale(prepared, {kept.run_id}) == [stale.run_id]

    assert os.path.isdir(kept.cgroup) and not os.path.exists(stale.cgroup)
    reap(leader)
    wait_until(runs.all_exited, what="the stale run's processes to exit")
    assert cgroups.kill_all(kept.cgroup).removed


@needs_cgroup
def test_waiting_for_an_empty_cgroup_gives_up_at_its_deadline(runs: Runs) -> None:
    run = runs.containment().run(runs.new_id())
    assert run.cgroup is not None
    run.create()
    leader, _ = runs.hostile(run)
    assert not cgroups._wait_empty(run.cgroup, 0.0)  # a deadline already past: no wait
    assert cgroups.kill_all(run.cgroup).removed
    reap(leader)


# -- the sweep ---------------------------------------------------------------------------------


def test_sweep_kills_a_hostile_tree(runs: Runs) -> None:
    run = containment.detect(runs.base, force_sweep=True).run(runs.new_id())
    assert run.cgroup is None
    leader, pids = runs.hostile(run)
    assert os.getsid(pids["orphan"]) != os.getsid(leader)
    assert sorted(run.members()) == sorted(pids.values())

    ended = run.end(session=leader)

    assert (ended.left, ended.removed) == ((), True)
    assert os.WTERMSIG(reap(leader)) == signal.SIGKILL
    wait_until(runs.all_exited, what="the tree's processes to exit")
    assert run.members() == []
    assert ended.usage.approximate and "sampled" in ended.usage.note


def test_sweep_matches_the_whole_variable(runs: Runs) -> None:
    run = containment.detect(runs.base, force_sweep=True).run(runs.new_id())
    longer = RunContainer(run.run_id + "0")
    inside = RunContainer(runs.new_id())
    runs.run_ids.append(longer.run_id)
    decoys = [runs.start(longer, "sleep", "600"),
              runs.start(inside, "sleep", "600",
                         env={"OTHER": f"{sweep.RUN_ID_ENV}={run.run_id}"})]
    target = runs.start(run, "sleep", "600")
    # /proc shows the spawned child's new environment once it has exec'd: poll, don't race
    wait_until(lambda: run.members() == [target], what=f"only {target} found by its run id")
    assert run.signal(signal.SIGTERM) == 1
    assert os.WTERMSIG(reap(target)) == signal.SIGTERM
    for decoy in (longer, inside):
        assert decoy.end().left == ()
    assert [os.WTERMSIG(reap(pid)) for pid in decoys] == [signal.SIGKILL, signal.SIGKILL]


def test_sweep_usage_is_sampled(runs: Runs) -> None:
    run = containment.detect(runs.base, force_sweep=True).run(runs.new_id())
    leader = runs.start(run, sys.executable, str(BURN), "0.2", "16")
    _, status, rusage = os.wait4(leader, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    ended = run.end(session=leader, rusage=rusage)

    usage = ended.usage
    assert usage.approximate
    assert usage.cpu_seconds is not None and usage.cpu_seconds >= 0.2
    assert usage.peak_memory is not None and usage.peak_memory >= 16 << 20
    assert ended.left == ()
