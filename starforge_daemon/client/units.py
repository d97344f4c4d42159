"""systemd unit files for the daemon: rendering them (pure functions) and writing them.

Every unit is an instance of ``starforge-daemon@.service`` whose instance name is the project
directory escaped the way ``systemd-escape --path`` does it, so ``%f`` in the unit is the project
directory. ``starforge systemd install`` writes a complete unit under the instance's own name
(``starforge-daemon@home-me-repo.service``), which systemd prefers to the template: each project
gets its own interpreter, user and stop timeout, and the ``systemctl`` commands are the same as
for the shipped template in ``systemd/``.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from starforge_daemon.store.atomic import write_atomic
from starforge_daemon.store.instance import HANDOFF_EXIT_STATUS

UNIT_PREFIX = "starforge-daemon"
TEMPLATE_NAME = f"{UNIT_PREFIX}@.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
UNIT_NAME_MAX = 255
DEFAULT_KILL_GRACE = 10.0  # AGENT_KILL_GRACE's default; the shipped units are rendered for it
STOP_MARGIN = 30  # seconds past the kill grace for archiving, saving and exiting (cf. cli.py)
START_TIMEOUT = 120  # as long as ``daemon start`` waits for READY (service.READY_TIMEOUT)
WATCHDOG = 60  # a loop stuck this long gets the daemon restarted; its agents are adopted
RESTART_DELAY = 5
# The shipped units look ``starforge`` up on the service's PATH when they start (a bare name
# would be looked up when systemd loads the unit, and must then exist in /usr/local/bin or
# /usr/bin); ``env`` execs it in place, so the main pid stays the daemon's.
SHIPPED_COMMAND = ("/usr/bin/env", "starforge")
_SAFE_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._:+@=,-")
_ESCAPE_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


class Scope(StrEnum):
    SYSTEM = "system"  # /etc/systemd/system, ``systemctl``; runs as the project's owner
    USER = "user"  # ~/.config/systemd/user, ``systemctl --user``; runs as you


@dataclass(frozen=True)
class UnitSpec:
    """What differs between units: where they run and how the CLI is started."""

    scope: Scope
    command: tuple[str, ...]  # the words that run the ``starforge`` CLI
    kill_grace: float = DEFAULT_KILL_GRACE
    run_as: tuple[str, str] | None = None  # (User=, Group=), system units only
    project: Path | None = None  # named in the header of an installed unit


def escape_path(path: str) -> str:
    """``systemd-escape --path``: ``/home/me/my-repo`` becomes ``home-me-my\\x2drepo``."""
    parts = [part for part in path.split("/") if part and part != "."]
    if ".." in parts:
        raise ValueError(f"path is not normalized: {path}")
    if not parts:
        return "-"
    out = []
    for index, char in enumerate("/".join(parts)):
        if char == "/":
            out.append("-")
        elif char in _ESCAPE_KEEP and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def unit_name(project: Path) -> str:
    """The unit of one project: ``starforge-daemon@<escaped project path>.service``."""
    name = f"{UNIT_PREFIX}@{escape_path(str(project))}.service"
    if len(name) > UNIT_NAME_MAX:
        raise ValueError(f"the project path is too long for a systemd unit name: {project}")
    return name


def unit_dir(scope: Scope, environ: Mapping[str, str] | None = None) -> Path:
    """Where systemd reads units written by an administrator (system) or by you (user)."""
    if scope is Scope.SYSTEM:
        return SYSTEM_UNIT_DIR
    environ = os.environ if environ is None else environ
    config = environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path(environ.get("HOME", "~")) / ".config"
    return base.expanduser() / "systemd" / "user"


def exec_word(word: str) -> str:
    """One literal argument for ``ExecStart=``: quoted when needed, ``%`` and ``$`` escaped."""
    if word and set(word) <= _SAFE_WORD:
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + escaped.replace("$", "$$") + '"'


def stop_timeout(kill_grace: float) -> int:
    """``TimeoutStopSec=``: the agents' stop-signal-to-SIGKILL grace plus time to wrap up."""
    return math.ceil(kill_grace) + STOP_MARGIN


def _header(spec: UnitSpec) -> list[str]:
    systemctl = "systemctl --user" if spec.scope is Scope.USER else "systemctl"
    if spec.project is not None:
        return [
            f"# starforge daemon for {spec.project}",
            "# Written by `starforge systemd install`; running it again replaces this file.",
            f"# Change settings with `{systemctl} edit {shlex.quote(unit_name(spec.project))}`.",
        ]
    lines = [
        "# starforge daemon, one instance per project; the instance is the project directory:",
        f'#   {systemctl} enable --now "{UNIT_PREFIX}@$(systemd-escape --path /path/to/repo)'
        '.service"',
        "# ExecStart runs `starforge` from the service's PATH (/usr/local/bin, /usr/bin, ...);",
        "# `starforge systemd install` writes a unit for one project that names its Python.",
    ]
    if spec.scope is Scope.SYSTEM:
        lines.append("# Without User= (add it with `systemctl edit`) the daemon and agents run as root.")
    return lines


def render_unit(spec: UnitSpec) -> str:
    """The text of a unit file for ``spec``."""
    system = spec.scope is Scope.SYSTEM
    command = " ".join(exec_word(word) for word in spec.command)
    lines = [*_header(spec), "", "[Unit]", "Description=starforge daemon for %f"]
    if system:
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "RequiresMountsFor=%f",
        "AssertPathIsDirectory=%f",
        "",
        "[Service]",
        "# READY once the daemon has taken in the queue, STOPPING when it shuts down, and a",
        "# WATCHDOG ping every WatchdogSec/2 from its loop.",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={command} --project-dir %f daemon start --foreground",
        "WorkingDirectory=%f",
    ]
    if system and spec.run_as is not None:
        user, group = spec.run_as
        lines += [f"User={user}", f"Group={group}"]
    lines += [
        f"SyslogIdentifier={UNIT_PREFIX}",
        "# `systemctl reload` replaces the daemon without stopping agents: it hands them over,",
        "# exits 75, and is started again at once to adopt them.",
        "ExecReload=/bin/kill -USR1 $MAINPID",
        f"SuccessExitStatus={HANDOFF_EXIT_STATUS}",
        f"RestartForceExitStatus={HANDOFF_EXIT_STATUS}",
        "Restart=on-failure",
        f"RestartSec={RESTART_DELAY}s",
        f"TimeoutStartSec={START_TIMEOUT}s",
        f"WatchdogSec={WATCHDOG}s",
        "# On SIGTERM the daemon stops its agents itself (AGENT_STOP_SIGNAL, then SIGKILL after",
        f"# AGENT_KILL_GRACE={spec.kill_grace:g}s) before it exits; this covers that.",
        f"TimeoutStopSec={stop_timeout(spec.kill_grace)}s",
        "# Only the daemon is signalled. Agents are children of the project's keeper process, so",
        "# when the daemon crashes they keep running and the restarted daemon adopts them.",
        "KillMode=process",
        "# The daemon makes a cgroup per run below the unit's own, so that a run's end kills",
        "# every process it started, even those that left its session (setsid).",
        "Delegate=yes",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
    ]
    return "\n".join(lines) + "\n"


def shipped_units() -> dict[str, str]:
    """The generic template units in the repository's ``systemd/`` folder, by relative path."""
    return {f"{scope.value}/{TEMPLATE_NAME}": render_unit(UnitSpec(scope, SHIPPED_COMMAND))
            for scope in Scope}


def write_unit(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` atomically; says ``created``, ``replaced`` or ``unchanged``."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        old = None
    if old == text:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
    return "created" if old is None else "replaced"


def next_steps(scope: Scope, name: str, user_name: str | None = None) -> list[str]:
    """The commands to run after writing unit ``name``."""
    user = scope is Scope.USER
    systemctl = "systemctl --user" if user else "systemctl"
    quoted = shlex.quote(name)
    steps = [f"{systemctl} daemon-reload", f"{systemctl} enable --now {quoted}",
             f"{systemctl} status {quoted}",
             f"journalctl {'--user ' if user else ''}--unit {quoted} --follow"]
    if user and user_name:
        steps.append(f"loginctl enable-linger {shlex.quote(user_name)}"
                     "   # keep it running while you are logged out")
    return steps


def command_words(python: str) -> tuple[str, ...]:
    """How an installed unit runs the CLI: this interpreter, by absolute path.

    ``-P`` keeps the project directory (the working directory) off ``sys.path``, so a module
    in the repository cannot shadow the daemon's own.
    """
    return (python, "-P", "-m", "starforge_daemon")


def render_for(scope: Scope, project: Path, python: str, kill_grace: float,
               run_as: tuple[str, str] | None) -> str:
    return render_unit(UnitSpec(scope, command_words(python), kill_grace,
                                run_as if scope is Scope.SYSTEM else None, project))

