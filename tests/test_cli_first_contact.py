"""First contact with the CLI: finding the project like git, what it says outside one, start-up
cost, --version, the daemon aliases, shell completion, logs -f ending with its run, pauses
without a daemon, the failed runs and retrying them, status --json, and the checkout launcher."""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, wait_until
from test_cli import background, text_of

from starforge_daemon.client import control
from starforge_daemon.store.atomic import move_unique
from starforge_daemon.store.paths import ProjectPaths

REPO = Path(__file__).resolve().parent.parent
GATED = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name('gated_agent.py')))}"
NOT_A_PROJECT = "Error: not a starforge project here or above (run `starforge init`)\n"


def starforge(*args: str, cwd: Path, env: dict[str, str] | None = None,
              check: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: no --project-dir, and no STARFORGE_PROJECT_DIR unless given."""
    base = {key: value for key, value in os.environ.items() if key != "STARFORGE_PROJECT_DIR"}
    result = subprocess.run([sys.executable, "-m", "starforge_daemon", *args], cwd=cwd,
                            env={**base, **(env or {})}, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"starforge {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder with no project in it or above it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert ProjectPaths.find(folder) is None, "a .claude/ above the test's folder"
    return folder


def gated_trigger(project: Project, name: str, gate: Path, **context: Any) -> Path:
    return project.trigger(name, "agent-a", context={"gate": str(gate), **context})


# -- which project -------------------------------------------------------------------------


def test_commands_find_the_project_from_a_subfolder(project: Project) -> None:
    project.start()
    deep = project.root / "src" / "deep"
    deep.mkdir(parents=True)

    status = starforge("daemon", "status", "--json", cwd=deep)
    queued = Path(starforge("trigger", "agent-a", cwd=deep, check=True).stdout.strip())

    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == project.daemon_pid()
    assert queued.parent == project.paths.triggers
    project.wait_archived(1)
    assert project.all_archived() == {queued.name: "done"}
    assert not (deep / ".claude").exists() and not (project.root / "src" / ".claude").exists()


def test_the_named_project_wins_over_the_one_found(project: Project, outside: Path) -> None:
    (outside / ".claude").mkdir()  # another project, found from where the commands run
    by_env = starforge("trigger", "agent-a", cwd=outside,
                       env={"STARFORGE_PROJECT_DIR": str(project.root)}, check=True)
    by_option = starforge("--project-dir", str(project.root), "trigger", "agent-b", cwd=outside,
                          check=True)
    assert {Path(by_env.stdout.strip()).parent,
            Path(by_option.stdout.strip()).parent} == {project.paths.triggers}
    assert list((outside / ".claude").iterdir()) == []
    helped = " ".join(starforge("--help", cwd=outside).stdout.split())
    assert "--project-dir" in helped and "STARFORGE_PROJECT_DIR" in helped
    assert "nearest folder from here upwards that holds .claude/" in helped


@pytest.mark.parametrize(("args", "code"), [
    (["daemon", "start"], 6), (["start"], 6), (["daemon", "restart"], 6), (["restart"], 6),
    (["daemon", "stop"], 6), (["daemon", "status"], 4), (["status", "--json"], 4),
    (["trigger", "agent-a"], 6), (["queue", "list"], 6), (["queue", "pause"], 6),
    (["queue", "resume", "agent-a"], 6), (["queue", "cancel", "x.trigger"], 6),
    (["logs", "agent-a"], 6), (["logs", "--daemon", "-f"], 6), (["report"], 6), (["runs"], 6),
    (["retry", "--all"], 6), (["agent", "stop", "agent-a"], 6), (["worktrees"], 6),
    (["worktrees", "clean"], 6), (["systemd", "install", "--user", "--unit-dir", "units"], 6),
])
def test_outside_a_project_commands_say_so_in_one_line(outside: Path, args: list[str],
                                                      code: int) -> None:
    result = starforge(*args, cwd=outside)
    assert (result.returncode, result.stdout, result.stderr) == (code, "", NOT_A_PROJECT)
    assert list(outside.iterdir()) == [], "nothing made, .claude/ least of all"


def test_a_named_folder_that_is_no_project_is_named(tmp_path: Path, outside: Path) -> None:
    missing = tmp_path / "nonexistent"
    for args in (["daemon", "start"], ["trigger", "agent-a"], ["logs", "--daemon"]):
        result = starforge("--project-dir", str(missing), *args, cwd=outside)
        assert (result.returncode, result.stderr) == (6, f"Error: no such folder {missing}\n")
    status = starforge("daemon", "status", cwd=outside, env={"STARFORGE_PROJECT_DIR": str(missing)})
    assert (status.returncode, status.stderr) == (4, f"Error: no such folder {missing}\n")
    bare = starforge("--project-dir", str(outside), "daemon", "start", cwd=tmp_path)
    assert bare.returncode == 6
    assert bare.stderr == (f"Error: not a starforge project: {outside} has no .claude/ folder "
                           "(run `starforge init` there)\n")
    assert not missing.exists() and list(outside.iterdir()) == []


def test_init_makes_the_project_here_and_demo_needs_none(outside: Path) -> None:
    made = starforge("init", cwd=outside, check=True)
    assert "created .claude/" in made.stdout and (outside / ".claude" / "triggers").is_dir()
    assert starforge("daemon", "status", cwd=outside).returncode == 3
    sub = outside / "sub"
    sub.mkdir()
    nested = starforge("init", cwd=sub, check=True)
    assert f"note: inside the project {outside}" in nested.stdout and (sub / ".claude").is_dir()


# -- start-up ------------------------------------------------------------------------------

HEAVY = ("tabulate", "pydantic", "pydantic_settings", "structlog", "psutil", "watchdog", "daemon",
         "starforge_daemon.daemon.engine", "starforge_daemon.daemon.service",
         "starforge_daemon.runtime.local.client")


def imported(project: Project, *args: str) -> set[str]:
    """The modules a CLI run imports, from ``python -X importtime``."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "starforge_daemon",
                             "--project-dir", str(project.root), *args], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [["--help"], ["trigger", "agent-a"], ["daemon", "status"]])
def test_a_command_imports_only_what_it_needs(project: Project, args: list[str]) -> None:
    modules = imported(project, *args)
    assert "starforge_daemon.cli.main" in modules
    assert not {module for module in modules if module.split(".")[0] in HEAVY or module in HEAVY}
    if args == ["--help"]:
        loaded = {module for module in modules if module.startswith("starforge_daemon.")}
        assert not loaded & {"starforge_daemon.store.settings", "starforge_daemon.intake.triggers",
                             "starforge_daemon.client.submit", "starforge_daemon.client.control"}


# -- version, aliases, completion ----------------------------------------------------------


def test_version_and_the_daemon_aliases(project: Project) -> None:
    assert project.cli("--version").stdout == "starforge 0.1.0\n"
    assert project.cli("status", check=False).returncode == 3
    project.write_env()
    assert "starforge daemon started" in project.cli("start").stdout
    first = project.daemon_pid()
    assert json.loads(project.cli("status", "--json").stdout)["pid"] == first
    project.cli("restart")
    second = project.daemon_pid()
    assert second != first
    assert project.cli("stop").stdout == f"starforge daemon stopped (pid {second})\n"
    helped = project.cli("--help").stdout
    commands = helped.split("Commands:")[1].split("\n\n")[0].split()
    assert "status" not in commands and "start" not in commands, "listed once, under daemon"
    assert "status, start, stop and restart are short for" in helped


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "_STARFORGE_COMPLETE=bash_complete"), ("zsh", "#compdef starforge"),
    ("fish", "_STARFORGE_COMPLETE=fish_complete")])
def test_completion_prints_the_shells_script(project: Project, shell: str, marker: str) -> None:
    assert marker in project.cli("completion", shell).stdout
    assert project.cli("completion", "tcsh", check=False).returncode == 2


def complete(cwd: Path, line: str) -> list[str]:
    """What bash would offer for ``line`` (the word being typed is its last one)."""
    words = line.split(" ")
    result = starforge(cwd=cwd, env={"_STARFORGE_COMPLETE": "bash_complete",
                                     "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert result.returncode == 0, result.stderr
    return [entry.split(",", 1)[1] for entry in result.stdout.splitlines() if entry]


def test_completion_offers_agents_triggers_and_run_ids(project: Project) -> None:
    paths = project.paths
    paths.ensure()
    paths.slots_file.write_text(json.dumps({"junior-dev-a": {"status": "idle", "pid": None,
                                                             "ticket": None,
                                                             "started_at": None}}))
    project.trigger("52.trigger", "qa-engineer")
    (paths.failed / "51.trigger").write_text('{"to_agent": "junior-dev-a"}')
    (paths.logs / "reviewer-1761368400-1a2b3c.log").write_text("")
    deep = project.root / "src"
    deep.mkdir()

    assert complete(deep, "starforge logs ") == ["junior-dev-a", "qa-engineer", "reviewer"]
    assert complete(deep, "starforge trigger j") == ["junior-dev-a"]
    assert complete(deep, "starforge retry ") == ["51.trigger"]
    assert complete(deep, "starforge queue cancel ") == ["52.trigger"]
    assert complete(deep, "starforge logs --run rev") == ["reviewer-1761368400-1a2b3c"]
    assert complete(project.root.parent, "starforge logs ") == [], "no project, no names"


# -- logs -f ends with its run -------------------------------------------------------------


def test_logs_follow_ends_when_the_run_ends_and_says_how(project: Project) -> None:
    gate = project.root / "gate"
    gated_trigger(project, "t.trigger", gate, exit=3)
    project.start(AGENT_COMMAND=GATED)
    wait_until(lambda: project.slots().get("agent-a", {}).get("status") == "busy",
               what="agent-a busy")
    with background(project, "logs", "agent-a", "-f") as (proc, out):
        wait_until(lambda: text_of(out) == "waiting\n", what="the run's output so far")
        assert proc.poll() is None, "following while the run lasts"
        gate.touch()
        assert proc.wait(timeout=30) == 0, "ended by itself"
        assert text_of(out) == "waiting\ngate opened\n", "all the run wrote, to its last line"
        said = text_of(out.with_suffix(".err"))
    run_id = project.result("t.trigger")["run_id"]
    assert said.splitlines()[-1] == f"==> run {run_id} ended: failed (exited with status 3) <=="
    again = project.cli("logs", "agent-a", "-f", timeout=30)
    assert again.stdout == "waiting\ngate opened\n" and "ended: failed" in again.stderr


# -- queue pause and resume ----------------------------------------------------------------


def test_pause_and_resume_say_what_they_changed_with_a_daemon(project: Project) -> None:
    project.start()
    assert project.cli("queue", "pause").stdout == (
        "paused all agents: no new runs start; running ones carry on\n")
    assert project.cli("queue", "resume", "agent-a").stdout == (
        "agent-a was not paused; all agents are still paused (starforge queue resume)\n")
    project.cli("queue", "pause", "agent-b")
    assert project.cli("queue", "resume").stdout == (
        "resumed all agents; still paused: agent-b (starforge queue resume AGENT)\n")
    assert project.cli("queue", "resume", "agent-b").stdout == "resumed agent-b\n"
    assert project.cli("queue", "resume").stdout == "there was no pause of all agents\n"


def test_pause_without_a_daemon_holds_when_it_starts(project: Project) -> None:
    paused = project.cli("queue", "pause", "agent-a")
    assert paused.stdout == ("paused agent-a: no new runs start; running ones carry on (the daemon "
                             "is not running; it keeps to this when it starts)\n")
    assert json.loads(project.paths.paused_file.read_text()) == {"all": False,
                                                                  "agents": ["agent-a"]}
    project.trigger("held.trigger", "agent-a")
    project.trigger("free.trigger", "agent-b")
    project.start()
    project.wait_archived(1)
    assert project.all_archived() == {"free.trigger": "done"}
    assert [(p["name"], p["note"]) for p in json.loads(
        project.cli("queue", "list", "--json").stdout)["pending"]] == [
        ("held.trigger", "agent-a is paused")]
    assert project.cli("queue", "resume", "agent-a").stdout == "resumed agent-a\n"
    project.wait_archived(2)
    bad = project.cli("queue", "pause", "no/such", check=False)
    assert bad.returncode == 2 and "is not an agent name" in bad.stderr


# -- runs --failed and retry ---------------------------------------------------------------


def test_runs_lists_the_failed_and_retry_takes_all_or_one_agent(project: Project) -> None:
    project.trigger("a-bad.trigger", "agent-a", ticket=7, context={"exit": 3})
    project.trigger("b-bad.trigger", "agent-b", context={"exit": 4})
    project.trigger("a-ok.trigger", "agent-a")
    project.start(PARALLEL_DAEMON="true")
    project.wait_archived(3)
    project.stop()

    failed = json.loads(project.cli("runs", "--failed", "--json").stdout)
    assert [(run["name"], run["agent"], run["ticket"], run["outcome"], run["reason"])
            for run in sorted(failed, key=lambda run: run["name"])] == [
        ("a-bad.trigger", "agent-a", "7", "failed", "exited with status 3"),
        ("b-bad.trigger", "agent-b", None, "failed", "exited with status 4")]
    assert all(run["ended_at"] and run["run_id"] and run["failed"] for run in failed)
    table = project.cli("runs").stdout.splitlines()
    assert table[0].split() == ["ENDED", "TRIGGER", "AGENT", "TICKET", "OUTCOME", "REASON", "RUN"]
    assert len(table) == 5 and any("a-ok.trigger" in line for line in table)
    assert "daemon's answer" not in project.cli("retry", "--help").stdout

    one = json.loads(project.cli("retry", "--agent", "agent-b", "--json").stdout)
    assert [entry["trigger"] for entry in one] == ["b-bad.trigger"]
    rest = project.cli("retry", "--all").stdout
    assert rest == f"a-bad.trigger -> {project.paths.triggers / 'a-bad.trigger'}\n"
    assert project.cli("runs", "--failed", "--json").stdout == "[]\n"
    assert project.cli("retry", "--all").stdout == "no failed triggers\n"
    for args in ([], ["x.trigger", "--all"], ["--all", "--agent", "agent-a"]):
        assert project.cli("retry", *args, check=False).returncode == 2
    missing = project.cli("retry", "gone.trigger", check=False)
    assert (missing.returncode, missing.stderr) == (
        1, f"Error: not in {project.paths.failed}: gone.trigger\n")


def test_retry_while_the_daemon_takes_the_trigger_never_fails(project: Project) -> None:
    """The retried file is stamped before it enters the queue: a daemon that claims it at
    once must not make retry fail (it did, with a bare "No such file or directory")."""
    project.trigger("again.trigger", "agent-a", context={"exit": 3})
    project.start()
    for attempt in range(25):
        wait_until(lambda: project.archived("failed") == ["again.trigger"],
                   what=f"the failure of attempt {attempt}")
        result = project.cli("retry", "again.trigger", "--json", check=False)
        assert result.returncode == 0, (attempt, result.stderr)
        assert [entry["trigger"] for entry in json.loads(result.stdout)] == ["again.trigger"]


def test_retry_stamps_the_trigger_before_the_daemon_can_take_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """The race above, made certain: the daemon claims the file the moment it is queued."""
    paths = ProjectPaths(tmp_path)
    paths.ensure()
    (paths.failed / "t.trigger").write_text('{"to_agent": "agent-a"}')
    seen: list[int] = []

    def queue_then_claim(source: Path, folder: Path) -> Path:
        target = move_unique(source, folder)
        seen.append(target.stat().st_mtime_ns)  # what the daemon orders it by
        os.rename(target, paths.running / target.name)
        return target

    monkeypatch.setattr(control, "move_unique", queue_then_claim)
    assert control.retry_failed(paths, ["t.trigger"], now=1234.5) == [paths.triggers / "t.trigger"]
    assert seen == [1_234_500_000_000]

    (paths.failed / "u.trigger").write_text('{"to_agent": "agent-a"}')

    def full(_source: Path, _folder: Path) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(control, "move_unique", full)
    with pytest.raises(control.RetryError, match=f"^cannot put {paths.failed / 'u.trigger'} back "
                       "in the queue: No space left on device$"):
        control.retry_failed(paths, ["u.trigger"])


# -- status --json -------------------------------------------------------------------------


def test_status_json_has_numbers_and_the_agent_program(project: Project) -> None:
    gate = project.root / "gate"
    gated_trigger(project, "t.trigger", gate)
    project.start(AGENT_COMMAND=GATED)
    busy = wait_until(lambda: project.slots().get("agent-a", {}).get("pid"), what="a pid")
    doc = json.loads(project.cli("status", "--json").stdout)
    slot = doc["slots"][0]
    assert slot["pid"] == int(busy) and isinstance(busy, str), "a string in the slots file only"
    assert isinstance(doc["pid"], int) and isinstance(doc["queue"]["running"], int)
    assert doc["agent_program"] == sys.executable
    assert f"agent program: {sys.executable}" in project.cli("status").stdout
    gate.touch()
    project.wait_archived(1)


def test_status_reads_odd_slot_files_without_a_traceback(project: Project) -> None:
    paths = project.paths
    paths.ensure()
    paths.slots_file.write_text(json.dumps({
        "a": {"status": "busy", "pid": "12x", "ticket": "1", "started_at": "yesterday",
              "log": 5},
        "b": {"status": "busy", "pid": "42", "ticket": None, "started_at": 17}}))
    result = project.cli("status", "--json", check=False)
    assert result.returncode == 3, result.stderr
    slots = json.loads(result.stdout)["slots"]
    assert [(slot["pid"], slot["elapsed_s"], slot["log"]) for slot in slots] == [
        (None, None, None), (42, None, None)]


# -- the checkout's launcher ---------------------------------------------------------------


def test_the_launcher_names_a_missing_dependency_in_one_line(outside: Path) -> None:
    result = subprocess.run([sys.executable, "-S", str(REPO / "bin" / "starforge"), "status"],
                            cwd=outside, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "'click'" in result.stderr and "pip install -e ." in result.stderr
