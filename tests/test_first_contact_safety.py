"""First contact: the demo never touches another project, init keeps secrets and run state out
of git, ``daemon start`` refuses an agent program that is not there, and ``starforge doctor``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import Project

from starforge_daemon.cli.demo import MARKER
from starforge_daemon.client.scaffold import exclude_from_git
from starforge_daemon.store.instance import running_pid

MISSING = "no-such-program-xyz"


@pytest.fixture(autouse=True)
def no_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git never looks above the test's folder, whatever holds it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry under ``root`` (and ``root`` itself): mode, mtime and content."""
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        entries[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return entries


def starforge(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "starforge_daemon", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def doctor_lines(project: Project, env: dict[str, str] | None = None) -> dict[str, str]:
    """``starforge doctor``'s lines by check name: ``"✓ <detail>"`` or ``"✗ <detail>"``."""
    result = project.cli("doctor", check=False, env=env)
    lines = {}
    for line in result.stdout.splitlines():
        mark, rest = line.split(" ", 1)
        name, detail = rest.split("  ", 1)
        lines[name.strip()] = f"{mark} {detail.strip()}"
    assert result.returncode == (0 if all(v.startswith("✓") for v in lines.values()) else 1), \
        result.stdout + result.stderr
    return lines


# -- the demo ----------------------------------------------------------------------------------


def test_demo_refuses_a_real_project_and_leaves_it_byte_identical(project: Project) -> None:
    project.write_env()
    with (project.root / ".env").open("a") as env:
        env.write("ANTHROPIC_API_KEY=secret\n")
    pending = project.trigger("52.trigger", "junior-dev-a", action="implement_ticket")
    before = snapshot(project.root)

    result = starforge("demo", "--dir", str(project.root), cwd=project.root.parent)

    assert result.returncode == 1
    said = (result.stdout + result.stderr).strip()
    assert len(said.splitlines()) == 1 and "not empty" in said and str(project.root) in said
    assert snapshot(project.root) == before
    assert pending.exists() and "ANTHROPIC_API_KEY=secret" in (project.root / ".env").read_text()
    assert not project.paths.pid_file.exists()


def test_demo_drains_its_own_folder_whatever_the_environment_says(project: Project,
                                                                   tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / ".claude" / "triggers").mkdir(parents=True)
    (real / ".claude" / "triggers" / "52.trigger").write_text('{"to_agent": "junior-dev-a"}')
    real_before = snapshot(real)
    project.paths.claude.rmdir()  # the demo takes only an empty folder or its own
    steering = {"AGENT_COMMAND": "false", "PARALLEL_DAEMON": "false", "AGENT_TIMEOUT": "0.01",
                "MAX_TRIGGER_BYTES": "64", "WORKTREE_MODE": "per-agent",
                "STARFORGE_PROJECT_DIR": str(real)}

    for attempt in ("fresh", "again in its own folder"):
        result = starforge("demo", "--dir", str(project.root), cwd=tmp_path, env=steering)
        assert result.returncode == 0, f"{attempt}:\n{result.stdout}{result.stderr}"
        archived = project.all_archived()
        # three tickets implemented, each handed on to a review; one failure; one broken file
        assert Counter(archived.values()) == {"done": 6, "failed": 1, "invalid": 1}, archived
        assert archived["broken.trigger"] == "invalid"
        failed = [name for name, folder in archived.items() if folder == "failed"]
        assert failed[0].startswith("qa-engineer-"), failed
        reviews = [name for name in archived if name.startswith("reviewer-")]
        assert len(reviews) == 3, "the example agent handed each ticket on"
        assert "Parallel execution enabled (up to 3" in project.log()
        assert running_pid(project.paths) is None and not project.paths.pid_file.exists()

    assert (project.root / MARKER).is_file()
    assert snapshot(real) == real_before


# -- init keeps .env and .claude/ out of git ---------------------------------------------------


def test_init_keeps_env_and_claude_out_of_git(project: Project) -> None:
    git(project.root, "init", "-q")
    (project.root / "code.py").write_text("print('hi')\n")
    assert doctor_lines(project)["kept out of git"].startswith("✗ .env is not excluded")

    first = project.cli("init")
    assert "excluded .env and .claude/ from git in .git/info/exclude" in first.stdout
    project.trigger("52.trigger", "junior-dev-a")
    listed = git(project.root, "status", "--porcelain", "--untracked-files=all")
    assert listed.split() == ["??", "code.py"]
    git(project.root, "add", "-A")
    assert git(project.root, "diff", "--cached", "--name-only").split() == ["code.py"]

    second = project.cli("init")
    assert "already excluded" in second.stdout
    lines = (project.root / ".git" / "info" / "exclude").read_text().splitlines()
    assert lines.count("/.env") == 1 and lines.count("/.claude/") == 1
    assert doctor_lines(project)["kept out of git"] == "✓ .env and .claude/ are excluded from git"


def test_a_project_in_a_subfolder_is_excluded_for_itself_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    project = repo / "apps" / "svc [1]*"
    project.mkdir(parents=True)
    git(repo, "init", "-q")
    for folder in (project, repo):
        (folder / ".env").write_text("ANTHROPIC_API_KEY=secret\n")
        (folder / ".claude").mkdir()
        (folder / ".claude" / "state").write_text("{}")

    said = exclude_from_git(project)

    exclude = (repo / ".git" / "info" / "exclude").resolve()
    assert said == f"excluded .env and .claude/ from git in {exclude}"
    listed = git(repo, "status", "--porcelain", "--untracked-files=all").split()
    assert listed == ["??", ".claude/state", "??", ".env"], "only the project's own are hidden"


def test_init_outside_git_says_nothing_was_excluded(project: Project) -> None:
    result = project.cli("init")
    assert "not in a git repository: nothing excluded from git" in result.stdout
    assert not (project.root / ".git").exists()


# -- daemon start refuses a missing agent program ----------------------------------------------


@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_start_refuses_a_missing_agent_program(project: Project, foreground: bool) -> None:
    project.write_env(AGENT_COMMAND=f"{MISSING} {{prompt}}")
    pending = project.trigger("52.trigger", "junior-dev-a")

    result = project.cli("daemon", "start", *(["--foreground"] if foreground else []),
                         check=False)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot start: AGENT_COMMAND runs '{MISSING}', which is not on PATH: "
        f"install {MISSING} or set AGENT_COMMAND in .env"]
    assert not project.paths.pid_file.exists() and pending.exists()
    assert running_pid(project.paths) is None


def test_start_says_how_to_install_claude_when_it_is_missing(project: Project,
                                                             tmp_path: Path) -> None:
    del project.settings["AGENT_COMMAND"]  # the default runs claude
    project.write_env()
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    result = project.cli("daemon", "start", check=False, env={"PATH": str(empty)})

    assert result.returncode != 0
    assert ("AGENT_COMMAND runs 'claude', which is not on PATH: install Claude Code "
            "(npm install -g @anthropic-ai/claude-code) or set AGENT_COMMAND in .env"
            ) in result.stderr
    assert not project.paths.pid_file.exists()


# -- starforge doctor --------------------------------------------------------------------------


def test_doctor_passes_a_good_project_with_its_daemon_running(project: Project) -> None:
    git(project.root, "init", "-q")
    project.cli("init")
    exclude_from_git(project.root)
    pid = project.start()

    lines = doctor_lines(project)

    assert all(line.startswith("✓") for line in lines.values()), lines
    assert lines["project"] == f"✓ {project.root}"
    assert lines["agent program"] == f"✓ {sys.executable}"
    assert lines["daemon"] == f"✓ running (pid {pid})"
    assert lines["trigger folder"] == f"✓ {project.paths.triggers} is writable"
    assert set(lines) >= {".env", "settings", "kept out of git", "control socket",
                          "keeper socket"}
    project.stop()
    assert "control socket" not in doctor_lines(project)


def test_doctor_fails_a_missing_agent_program(project: Project) -> None:
    project.cli("init")
    project.write_env(AGENT_COMMAND=MISSING)

    lines = doctor_lines(project)

    assert lines["agent program"] == (f"✗ AGENT_COMMAND runs '{MISSING}', which is not on "
                                      f"PATH: install {MISSING} or set AGENT_COMMAND in .env")
    assert [name for name, line in lines.items() if line.startswith("✗")] == ["agent program"]
    assert lines["daemon"] == "✓ not running"


def test_doctor_names_what_is_wrong_without_a_traceback(project: Project) -> None:
    project.paths.claude.rmdir()  # a folder that was never `starforge init`-ed
    (project.root / ".env").write_text("ANTHROPIC_API_KEY='sk-unclosed\n")

    lines = doctor_lines(project)

    assert lines["project"].startswith("✗ no .claude/")
    assert lines[".env"].startswith("✗ .env line 1") and "sk-unclosed" not in lines[".env"]
    assert lines["settings"] == "✗ not checked: .env does not parse"
    assert lines["trigger folder"].startswith("✗")


# -- messages say what happened, in one line, without Python's internals ------------------------


def test_demo_in_a_folder_it_cannot_make_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")

    result = starforge("demo", "--dir", str(tmp_path / "a-file" / "demo"), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.strip() == f"cannot use {tmp_path / 'a-file' / 'demo'}: Not a directory"
    assert "Traceback" not in result.stderr


def test_the_example_agent_run_by_hand_says_who_runs_it(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("STARFORGE_")}
    result = subprocess.run([sys.executable, "-m", "starforge_daemon.example_agent"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "only the starforge daemon runs this" in result.stderr
