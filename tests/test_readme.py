"""The README's commands work as shown.

The shell blocks (fenced as ```sh) of "Using it in a project" and "Everyday commands" run for
real, each as one ``bash -euo pipefail`` script, with the installed ``starforge`` (the one
beside this Python) first on PATH, in a temporary project, and must exit 0. Output shown as
an example is fenced as ```text and not run. A ```sh block right after a line

    <!-- not run by tests/test_readme.py: REASON -->

is skipped on purpose: it needs something this test cannot have (npm and an API key for
Claude Code, the reader's own paths); the README's other blocks stand in for it (the example
agent as ``AGENT_COMMAND``). The systemd commands live in docs/systemd.md, which is not run;
tests/test_systemd.py covers them. The install command runs its venv, pip and demo part in a
copy of this checkout; its apt-get part needs root on a fresh Debian or Ubuntu and is not run
here. The test command must be the line that .ci/run runs, and every link in the README and
docs/ must lead to a file (and heading) that exists.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import Project, processes_of

from starforge_daemon.store.settings import SETTINGS

CHECKOUT = Path(__file__).resolve().parent.parent
README = CHECKOUT / "README.md"
SKIP_MARK = "<!-- not run by tests/test_readme.py:"
BLOCK_TIMEOUT = 90.0
# Not copied when the install command is tried on a copy of the checkout.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                    ".*_cache", ".hypothesis", ".benchmarks", "results")


@dataclass(frozen=True)
class Block:
    line: int  # where its code starts in README.md
    code: str
    skipped: bool


def blocks(section: str) -> list[Block]:
    """The ```sh blocks under the README's ``## section`` heading, its subsections included."""
    found: list[Block] = []
    code: list[str] | None = None  # the lines of the block being read
    in_section, start, skipped, previous = False, 0, False, ""
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if code is not None:
            if line.startswith("```"):
                found.append(Block(start, "\n".join(code) + "\n", skipped))
                code = None
            else:
                code.append(line)
        elif line.startswith("## "):
            in_section = line[3:].strip() == section
        elif in_section and line.strip() == "```sh":
            code, start, skipped = [], number + 1, previous.startswith(SKIP_MARK)
        if line.strip():
            previous = line.strip()
    assert found, f"README.md has no ```sh block under '## {section}'"
    return found


def readme_environment() -> dict[str, str]:
    """This Python's ``starforge`` and ``python3`` first on PATH; no daemon setting or project
    from the test's own environment."""
    scrubbed = {*(setting.name for setting in SETTINGS), "STARFORGE_PROJECT_DIR", "NOTIFY_SOCKET"}
    env = {key: value for key, value in os.environ.items() if key not in scrubbed}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def run_shell(code: str, cwd: Path, env: dict[str, str], where: str,
              timeout: float = BLOCK_TIMEOUT) -> str:
    """Run ``code`` with bash; fail with its output unless it exits 0. On a timeout, everything
    it started in its session is killed (a daemon it started has a session of its own)."""
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-xc", code], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{where} did not finish within {timeout:g} s:\n{output}")
    assert process.returncode == 0, f"{where} exited {process.returncode}:\n{output}"
    return output


def run_section(section: str, cwd: Path) -> list[str]:
    """Run the section's blocks in order; the code of those that ran."""
    ran = []
    for block in blocks(section):
        if not block.skipped:
            run_shell(block.code, cwd, readme_environment(), f"README.md line {block.line}")
            ran.append(block.code)
    return ran


def test_using_it_in_a_project(project: Project) -> None:
    subprocess.run(["git", "init", "-q", str(project.root)], check=True)
    code = "".join(run_section("Using it in a project", project.root))

    steps = ["starforge init", "AGENT_COMMAND=", "starforge doctor", "starforge start",
             "starforge trigger junior-dev-a", "starforge status", "starforge stop"]
    where = [code.find(step) for step in steps]
    assert -1 not in where and where == sorted(where), f"the README's steps, in order: {steps}"
    done = [name for name in project.archived("done") if name.startswith("junior-dev-a-")]
    assert len(done) == 1, project.all_archived()
    assert project.result(done[0])["outcome"] == "succeeded"
    assert not project.paths.pid_file.exists(), "the README's flow ends with the daemon stopped"
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                               cwd=project.root, capture_output=True, text=True, check=True)
    assert untracked.stdout == "", f"starforge's files show up in git:\n{untracked.stdout}"


def test_everyday_commands(project: Project) -> None:
    shutil.rmtree(project.paths.claude)  # the demo takes only an empty folder
    project.cli("demo", "--dir", str(project.root))
    project.cli("daemon", "start")
    code = "".join(run_section("Everyday commands", project.root))
    for command in ("starforge status", "starforge queue list", "starforge logs",
                    "starforge runs --failed", "starforge retry", "starforge queue pause",
                    "starforge report", 'grep "MODE"', "jq "):
        assert command in code, f"no `{command}` in the README's everyday commands"


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, no punctuation, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_in_the_readme_and_docs_lead_somewhere() -> None:
    pages = [README, *sorted((CHECKOUT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.is_file(), f"{page.name} links to {target}, which is not there"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                assert fragment in {anchor(heading) for heading in headings}, \
                    f"{page.name} links to {target}: no such heading"


def test_the_test_command_is_what_ci_runs() -> None:
    [block] = [block for block in blocks("Install and try it") if "pytest" in block.code]
    command = block.code.strip()
    assert "\n" not in command, "the README's test command is one line"
    ci_lines = [line.strip() for line in (CHECKOUT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run does not run the README's test command: {command}"


@pytest.mark.timeout(300)
def test_the_install_command_installs_and_runs_the_demo(tmp_path: Path) -> None:
    """Its venv, pip and demo part, in a copy of this checkout (pip needs the package index)."""
    [block] = [block for block in blocks("Install and try it") if "starforge demo" in block.code]
    steps = block.code.strip().split(" && ")
    assert steps[:2] == ["sudo apt-get update",
                         "sudo apt-get install -y python3-venv python3-dev gcc"]
    checkout = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, checkout, ignore=NOT_SOURCE)
    env = readme_environment()
    # where the demo makes its project: a short path, as its sockets' paths must stay short
    demos = Path(tempfile.mkdtemp(prefix="starforge-readme-"))
    try:
        output = run_shell(" && ".join(steps[2:]), checkout, {**env, "TMPDIR": str(demos)},
                           "the install command", timeout=240)
    finally:
        leftovers = processes_of(demos)
        for process in leftovers:
            process.kill()
        psutil.wait_procs(leftovers, timeout=5)
        shutil.rmtree(demos, ignore_errors=True)
    assert not leftovers, f"the demo left processes behind: {leftovers}"
    assert (checkout / ".venv" / "bin" / "starforge").exists(), output
