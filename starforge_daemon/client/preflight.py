"""What a project needs for its daemon to work, as typed checks.

``daemon start`` refuses to start when :func:`agent_program` fails, before anything detaches;
``starforge doctor`` prints every check of :func:`diagnose`. Nothing here prints, and nothing
imports the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from starforge_daemon.client.scaffold import PRIVATE_NAMES, NotInGit, git_location
from starforge_daemon.core.agent_cli import root_bypass_refusal
from starforge_daemon.runtime.local import containment
from starforge_daemon.store.control_socket import ControlError, request
from starforge_daemon.store.instance import running_pid
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import (
    Settings,
    SettingsError,
    env_file_values,
    load_settings,
)
from starforge_daemon.workspaces.git import GitError, git

PING_TIMEOUT = 5.0
UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in the Flags column of /proc/net/unix


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def agent_program(settings: Settings) -> Check:
    """``AGENT_COMMAND``'s program, found as the runs will start it (on the daemon's PATH)."""
    problem = settings.agent_program_problem
    return Check("agent program", problem is None,
                 problem or settings.agent_program or f"{settings.command_words[0]}: each trigger names "
                 "it; checked when it runs")


def root_permissions(paths: ProjectPaths, settings: Settings) -> Check:
    """As root, Claude Code's permission bypass needs ``IS_SANDBOX=1`` (``daemon start`` refuses
    without it)."""
    values = env_file_values(paths)
    sandbox = os.environ.get("IS_SANDBOX", values["IS_SANDBOX"].value if "IS_SANDBOX" in values
                             else None)
    refusal = root_bypass_refusal(settings.command_words, os.geteuid(), sandbox)
    detail = "not root" if os.geteuid() != 0 else "root, and the agent command can run as root"
    return Check("permissions", refusal is None, refusal or detail)


def run_containment(paths: ProjectPaths) -> Check:
    """How the runs' processes would be kept together; the sweep is a working fallback."""
    return Check("containment", True, containment.detect(paths.root).text)


def project_found(paths: ProjectPaths) -> Check:
    if paths.claude.is_dir():
        return Check("project", True, str(paths.root))
    return Check("project", False, f"no .claude/ in {paths.root} (`starforge init` makes one)")


def settings_checks(paths: ProjectPaths) -> list[Check]:
    """``.env``, the settings, the agent program: each is checked once the one before passed."""
    if paths.env_file.is_file():
        try:
            env_file_values(paths)
        except SettingsError as error:
            return [Check(".env", False, str(error)),
                    Check("settings", False, "not checked: .env does not parse"),
                    Check("agent program", False, "not checked: .env does not parse")]
        env = Check(".env", True, f"{paths.env_file} parses")
    else:
        env = Check(".env", True, "none: the defaults and the environment apply")
    try:
        settings = load_settings(paths)
    except SettingsError as error:
        return [env, Check("settings", False, str(error)),
                Check("agent program", False, "not checked: the settings are invalid")]
    return [env, Check("settings", True, settings.mode_text), agent_program(settings),
            root_permissions(paths, settings)]


def trigger_folder(paths: ProjectPaths) -> Check:
    name, folder = "trigger folder", paths.triggers
    if not folder.is_dir():
        return Check(name, False, f"{folder} is missing (`starforge init` makes it)")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(name, False, f"{folder} is not writable by you")
    return Check(name, True, f"{folder} is writable")


def _ignored(root: Path, name: str) -> bool:
    try:
        git(root, "check-ignore", "--quiet", "--", name)
    except GitError:  # exit 1: not ignored (a tracked file never is)
        return False
    return True


def git_exclusion(root: Path) -> Check:
    """``.env`` and ``.claude/`` are ignored by git, so ``git add -A`` leaves them out."""
    name = "kept out of git"
    try:
        git_location(root)
    except NotInGit as error:
        return Check(name, True, f"{error}: nothing to keep out")
    except GitError as error:
        return Check(name, False, f"cannot ask git: {error}")
    problems = [f"{path} is tracked (git rm -r --cached {path})"
                if git(root, "ls-files", "--", path) else
                f"{path} is not excluded (`starforge init` excludes it)"
                for path in PRIVATE_NAMES if not _ignored(root, path)]
    if problems:
        return Check(name, False, "; ".join(problems))
    return Check(name, True, ".env and .claude/ are excluded from git")


def control_socket(paths: ProjectPaths) -> Check:
    """Any answer, even to a request it does not know, shows the daemon's loop is alive."""
    name = "control socket"
    try:
        request(paths.control_socket, {"op": "ping"}, timeout=PING_TIMEOUT)
    except ControlError as error:
        return Check(name, False, str(error))
    except OSError as error:
        return Check(name, False, f"cannot connect to {paths.control_socket}: {error.strerror}")
    except ValueError:
        return Check(name, False, f"{paths.control_socket} answered something that is not JSON")
    return Check(name, True, f"{paths.control_socket} answers")


def keeper_socket(paths: ProjectPaths) -> Check:
    """Read from the kernel's socket table: the keeper serves one daemon at a time, and a
    connection from here would take the running daemon's place."""
    name, path = "keeper socket", str(paths.keeper_socket)
    with open("/proc/net/unix", encoding="utf-8", errors="replace") as table:
        next(table)  # the header
        for line in table:
            fields = line.rstrip("\n").split(None, 7)
            if len(fields) == 8 and fields[7] == path and int(fields[3], 16) & UNIX_LISTENING:
                return Check(name, True, f"{path} is listening")
    return Check(name, False, f"nothing listens at {path}")


def diagnose(paths: ProjectPaths) -> list[Check]:
    pid = running_pid(paths)
    checks = [project_found(paths), *settings_checks(paths),
              Check("daemon", True, f"running (pid {pid})" if pid else "not running"),
              trigger_folder(paths), git_exclusion(paths.root), run_containment(paths)]
    if pid is not None:
        checks += [control_socket(paths), keeper_socket(paths)]
    return checks
