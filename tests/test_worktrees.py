"""WORKTREE_MODE end to end: the real daemon, real git, a real temporary repository."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, gone, wait_until
from hypothesis import given
from hypothesis import strategies as st

from starforge_daemon.workspaces.worktree_folder import MAX_SLUG, slug

AGENT = Path(__file__).with_name("worktree_agent.py")
WORKTREES = ".claude/worktrees"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True).stdout


def subjects(project: Project, branch: str) -> list[str]:
    return git(project.root, "log", "--format=%s", branch).splitlines()


def journal(project: Project, event: str, agent: str | None = None) -> list[dict[str, Any]]:
    path = project.root / "worktree-journal.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    entries = [json.loads(line) for line in lines]
    return [e for e in entries if e["event"] == event and agent in (None, e["agent"])]


def finished(project: Project) -> int:
    """Runs whose end the daemon has fully handled (the worktree is released before FINISH)."""
    return sum(" FINISH " in line for line in project.log().splitlines())


def wait_finished(project: Project, count: int) -> None:
    """``count`` runs finished and their triggers archived (a moment after FINISH, the same
    turn)."""
    wait_until(lambda: finished(project) >= count and len(project.all_archived()) >= count, 20,
               f"{count} finished runs, archived")


def listing(project: Project) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in json.loads(project.cli("worktrees", "--json").stdout)}


@pytest.fixture
def repo(project: Project) -> Project:
    """The project is a git repository with one commit, and runs the worktree agent."""
    git(project.root, "init", "-q", "-b", "main")
    git(project.root, "config", "user.name", "Test")
    git(project.root, "config", "user.email", "test@example.com")
    (project.root / "README.md").write_text("# project\n")
    git(project.root, "add", "README.md")
    git(project.root, "commit", "-q", "-m", "Initial commit")
    project.settings["AGENT_COMMAND"] = f"{shlex.quote(sys.executable)} {shlex.quote(str(AGENT))}"
    return project


def test_parallel_agents_commit_in_their_own_worktrees(repo: Project) -> None:
    both = ["alice.ready", "bob.ready"]
    for agent in ("alice", "bob"):
        repo.trigger(f"{agent}.trigger", agent, context={
            "write": f"{agent}.txt", "ready": f"{agent}.ready", "wait_for": both, "commit": True})
    repo.start(PARALLEL_DAEMON="true", WORKTREE_MODE="per-agent")
    assert repo.wait_archived(2) == {"alice.trigger": "done", "bob.trigger": "done"}
    for agent, other in (("alice", "bob"), ("bob", "alice")):
        start, end = journal(repo, "start", agent)[0], journal(repo, "end", agent)[0]
        worktree = repo.root / WORKTREES / f"agent-{agent}"
        assert start["cwd"] == str(worktree)
        assert start["env"]["STARFORGE_WORKTREE"] == str(worktree)
        assert start["env"]["STARFORGE_BRANCH"] == f"starforge/agent-{agent}"
        assert start["env"]["STARFORGE_PROJECT_DIR"] == str(repo.root)
        assert f"{agent}.txt" in end["seen"] and f"{other}.txt" not in end["seen"]
        assert subjects(repo, f"starforge/agent-{agent}") == [f"{agent}: {agent}.txt",
                                                             "Initial commit"]
    assert subjects(repo, "main") == ["Initial commit"]
    assert not (repo.root / "alice.txt").exists() and not (repo.root / "bob.txt").exists()
    untracked = git(repo.root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert not [line for line in untracked if WORKTREES in line]


def test_per_agent_worktree_is_reused_across_runs(repo: Project) -> None:
    repo.trigger("1.trigger", "alice", context={"write": "one.txt", "commit": True})
    repo.start(WORKTREE_MODE="per-agent")
    wait_finished(repo, 1)
    repo.trigger("2.trigger", "alice", ticket=7, context={"write": "two.txt", "commit": True})
    wait_finished(repo, 2)
    first, second = journal(repo, "start", "alice")
    assert first["cwd"] == second["cwd"] == str(repo.root / WORKTREES / "agent-alice")
    assert "one.txt" in second["files"]
    assert subjects(repo, "starforge/agent-alice") == ["alice: two.txt", "alice: one.txt",
                                                       "Initial commit"]
    item = listing(repo)["agent-alice"]
    assert (item["agent"], item["ticket"], item["last_run"]) == ("alice", "7", second["run_id"])
    assert (item["last_outcome"], item["dirty"], item["busy"]) == ("succeeded", False, False)


def test_per_ticket_worktree_is_reused_and_removed_once_clean(repo: Project) -> None:
    worktree = repo.root / WORKTREES / "ticket-52"
    repo.trigger("1.trigger", "alice", ticket=52, context={"write": "notes.txt"})
    repo.start(WORKTREE_MODE="per-ticket")
    wait_finished(repo, 1)
    assert worktree.is_dir(), "uncommitted work keeps the worktree"
    assert "kept .claude/worktrees/ticket-52 (branch starforge/ticket-52): 1 uncommitted" \
        in repo.log()
    assert listing(repo)["ticket-52"]["dirty"] is True

    repo.trigger("2.trigger", "bob", context={"ticket": "52", "write": "more.txt",
                                              "commit": True})
    wait_finished(repo, 2)
    start = journal(repo, "start", "bob")[0]
    assert start["cwd"] == str(worktree) and "notes.txt" in start["files"]
    assert not worktree.exists(), "clean after success: removed"
    assert "removed .claude/worktrees/ticket-52: clean (branch starforge/ticket-52 kept)" \
        in repo.log()
    assert subjects(repo, "starforge/ticket-52") == ["bob: more.txt", "Initial commit"]

    repo.trigger("3.trigger", "carol", ticket=52)
    repo.trigger("4.trigger", "dave", context={"write": "mine.txt", "commit": True})
    wait_finished(repo, 4)
    assert "notes.txt" in journal(repo, "start", "carol")[0]["files"], "made again from its branch"
    assert not worktree.exists()
    assert journal(repo, "start", "dave")[0]["cwd"] == str(repo.root / WORKTREES / "agent-dave")
    assert list(listing(repo)) == ["agent-dave"], "no ticket: the agent's own worktree, kept"


def test_failed_run_keeps_its_ticket_worktree(repo: Project) -> None:
    repo.trigger("t.trigger", "alice", ticket="PROJ-9", context={"commit": True,
                                                                  "write": "x", "exit": 3})
    repo.start(WORKTREE_MODE="per-ticket")
    wait_finished(repo, 1)
    assert repo.result("t.trigger")["exit_code"] == 3
    assert (repo.root / WORKTREES / "ticket-PROJ-9").is_dir()
    assert "kept .claude/worktrees/ticket-PROJ-9: the run did not succeed (exited with " \
        "status 3)" in repo.log()


def test_runs_of_one_ticket_at_the_same_time_share_its_worktree(repo: Project) -> None:
    both = ["alice.ready", "bob.ready"]
    for agent in ("alice", "bob"):
        repo.trigger(f"{agent}.trigger", agent, ticket=5, context={
            "write": f"{agent}.txt", "ready": f"{agent}.ready", "wait_for": both})
    repo.start(PARALLEL_DAEMON="true", WORKTREE_MODE="per-ticket")
    wait_finished(repo, 2)
    for agent in ("alice", "bob"):
        assert {"alice.txt", "bob.txt"} <= set(journal(repo, "end", agent)[0]["seen"])
    log = repo.log()
    assert log.count("kept .claude/worktrees/ticket-5: still in use by run") == 1
    assert "kept .claude/worktrees/ticket-5 (branch starforge/ticket-5): 2 uncommitted" in log


def test_clean_removes_only_idle_clean_worktrees(repo: Project) -> None:
    repo.trigger("a.trigger", "alice", context={"write": "a.txt", "commit": True})
    repo.trigger("b.trigger", "bob", context={"write": "b.txt"})
    repo.trigger("c.trigger", "carol", context={"wait_for": ["go"]})
    repo.start(PARALLEL_DAEMON="true", WORKTREE_MODE="per-agent")
    wait_finished(repo, 2)
    wait_until(lambda: journal(repo, "start", "carol"), what="carol at work")
    table = repo.cli("worktrees").stdout
    assert "dirty (1)" in table and "busy, clean" in table
    out = repo.cli("worktrees", "clean").stdout
    assert "removed .claude/worktrees/agent-alice" in out
    assert "kept .claude/worktrees/agent-bob (branch starforge/agent-bob): 1 uncommitted" in out
    assert "kept .claude/worktrees/agent-carol: in use by run" in out
    assert sorted(listing(repo)) == ["agent-bob", "agent-carol"]
    assert subjects(repo, "starforge/agent-alice")[0] == "alice: a.txt", "the branch stays"
    (repo.root / "go").touch()
    wait_finished(repo, 3)
    assert listing(repo)["agent-carol"]["busy"] is False


def test_worktree_that_cannot_be_made_fails_only_its_trigger(repo: Project) -> None:
    git(repo.root, "checkout", "-q", "-b", "starforge/agent-alice")
    repo.trigger("a.trigger", "alice")
    repo.start(WORKTREE_MODE="per-agent")
    wait_finished(repo, 1)
    assert repo.all_archived() == {"a.trigger": "failed"}
    reason = repo.result("a.trigger")["reason"]
    assert reason.startswith("cannot prepare worktree .claude/worktrees/agent-alice on branch "
                             "starforge/agent-alice:")
    assert "already checked out" in reason
    assert journal(repo, "start") == []
    repo.trigger("b.trigger", "bob")
    repo.wait_archived(2)
    assert repo.result("b.trigger")["outcome"] == "succeeded"
    assert repo.cli("daemon", "status", check=False).returncode == 0


def test_new_branches_start_at_worktree_base(repo: Project) -> None:
    git(repo.root, "tag", "v1")
    (repo.root / "later.txt").write_text("later\n")
    git(repo.root, "add", "later.txt")
    git(repo.root, "commit", "-q", "-m", "Later")
    repo.trigger("a.trigger", "alice", context={"write": "a.txt", "commit": True})
    repo.start(WORKTREE_MODE="per-agent", WORKTREE_BASE="v1")
    wait_finished(repo, 1)
    assert "later.txt" not in journal(repo, "start", "alice")[0]["files"]
    assert subjects(repo, "starforge/agent-alice") == ["alice: a.txt", "Initial commit"]


def test_mode_off_runs_in_the_project_root(repo: Project) -> None:
    repo.trigger("a.trigger", "alice")
    repo.start()
    wait_finished(repo, 1)
    start = journal(repo, "start", "alice")[0]
    assert start["cwd"] == str(repo.root)
    assert "STARFORGE_WORKTREE" not in start["env"] and "STARFORGE_BRANCH" not in start["env"]
    assert not (repo.root / WORKTREES).exists()


@pytest.mark.parametrize(("setting", "expected"), [
    ({"WORKTREE_MODE": "per-agent"}, "WORKTREE_MODE=per-agent needs a git repository"),
    ({"WORKTREE_MODE": "sometimes"},
     "WORKTREE_MODE='sometimes': must be off, per-agent or per-ticket"),
    ({"WORKTREE_MODE": "per-ticket", "WORKTREE_BASE": "-x"},
     "WORKTREE_BASE='-x': must be one commit, like HEAD, main or v1.2 (no spaces, no leading "
     "'-')"),
])
def test_unusable_worktree_settings_stop_the_start(project: Project, setting: dict[str, str],
                                                   expected: str) -> None:
    project.write_env(**setting)
    result = project.cli("daemon", "start", check=False)
    assert result.returncode != 0
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not project.paths.pid_file.exists()


def test_worktrees_command_help_and_errors(project: Project) -> None:
    assert "dirty" in project.cli("worktrees", "--help").stdout
    assert "never" in project.cli("worktrees", "clean", "--help").stdout
    outside = project.cli("worktrees", check=False)
    assert outside.returncode == 1 and "cannot list worktrees: fatal: not a git repository" \
        in outside.stderr
    assert project.cli("worktrees", "--json", "clean", check=False).returncode == 2


def test_worktree_base_that_names_no_commit_stops_the_start(repo: Project) -> None:
    repo.write_env(WORKTREE_MODE="per-ticket", WORKTREE_BASE="no-such-branch")
    result = repo.cli("daemon", "start", check=False)
    assert result.returncode != 0
    assert "WORKTREE_BASE='no-such-branch' does not name a commit" in result.stderr


def test_crashed_daemon_hands_the_worktree_to_the_next_one(repo: Project) -> None:
    worktree = repo.root / WORKTREES / "ticket-7"
    repo.trigger("t.trigger", "alice", ticket=7,
                 context={"write": "work.txt", "wait_for": ["go"], "commit": True})
    repo.start(WORKTREE_MODE="per-ticket")
    start = wait_until(lambda: journal(repo, "start", "alice"), what="agent at work")[0]
    pid = repo.daemon_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: gone(pid), 5, "daemon gone")
    repo.start()
    assert repo.slots()["alice"]["status"] == "busy"
    assert "adopted a run that is still going" in repo.log()
    assert worktree.is_dir() and (worktree / "work.txt").exists(), "the adopted run keeps it"
    assert listing(repo)["ticket-7"]["runs"] == [start["run_id"]]
    (repo.root / "go").touch()
    wait_finished(repo, 1)
    assert repo.result("t.trigger")["outcome"] == "succeeded"
    assert journal(repo, "end", "alice")[0]["cwd"] == str(worktree)
    assert subjects(repo, "starforge/ticket-7") == ["alice: work.txt", "Initial commit"]
    assert not worktree.exists(), "clean after success: removed by the adopting daemon"


def test_half_created_worktrees_are_cleaned_at_start(repo: Project) -> None:
    folder = repo.root / WORKTREES
    git(repo.root, "worktree", "add", "-q", "-b", "starforge/ticket-77", str(folder / "ticket-77"))
    admin = Path(git(repo.root, "rev-parse", "--absolute-git-dir").strip()) / "worktrees"
    (admin / "ticket-77" / "locked").write_text("initializing")  # as if `worktree add` died
    (folder / "ticket-77" / "README.md").unlink()  # its checkout never finished
    (folder / "ticket-88").mkdir()
    (folder / "ticket-88" / "partial.txt").write_text("x")  # a folder git never heard of
    (folder / "ticket-99").mkdir()  # unknown to git, but an agent worked there once
    (folder / ".meta").mkdir()
    (folder / ".meta" / "ticket-99.json").write_text(json.dumps({"agent": "alice"}))
    (folder / "nested").mkdir()
    git(folder / "nested", "init", "-q")  # a repository of its own
    git(repo.root, "worktree", "add", "-q", "--detach", str(repo.root.parent / "gone"))
    (repo.root.parent / "gone" / ".git").unlink()
    (repo.root.parent / "gone" / "README.md").unlink()
    (repo.root.parent / "gone").rmdir()

    repo.start(WORKTREE_MODE="per-ticket")
    assert sorted(p.name for p in folder.iterdir()) == [".lock", ".meta", "nested", "ticket-99"]
    assert git(repo.root, "worktree", "list", "--porcelain").count("worktree ") == 1, "pruned"
    log = repo.log()
    assert "removed .claude/worktrees/ticket-77: its creation was interrupted" in log
    assert "removed .claude/worktrees/ticket-88: a half-created worktree folder" in log
    assert ".claude/worktrees/ticket-99 is not a worktree of this repository; left alone" in log
    assert ".claude/worktrees/nested is not a worktree" in log
    repo.trigger("t.trigger", "alice", ticket=77, context={"write": "a.txt", "commit": True})
    wait_finished(repo, 1)
    assert subjects(repo, "starforge/ticket-77") == ["alice: a.txt", "Initial commit"]


@pytest.mark.parametrize("text", ["52", "PROJ-9", "feature/login", "a..b", "x.lock", "end.",
                                  "..", "", " ", "ünïcode", "-lead", ".hidden", "@{u}",
                                  "x" * 200])
def test_slugs_make_valid_branch_names(text: str) -> None:
    name = slug(text)
    assert subprocess.run(["git", "check-ref-format", "--branch", f"starforge/ticket-{name}"],
                          capture_output=True).returncode == 0, name
    assert len(name) <= MAX_SLUG + 9


@given(st.text(max_size=80), st.text(max_size=80))
def test_slugs_are_safe_and_never_shared(first: str, second: str) -> None:
    for text in (first, second):
        name = slug(text)
        assert name and set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789._-")
        assert ".." not in name and not name.endswith((".", ".lock"))
    assert (slug(first) == slug(second)) == (first == second)
