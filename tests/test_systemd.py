"""systemd: the shipped units, ``starforge systemd install``, and the notify protocol."""

from __future__ import annotations

import math
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import Project, wait_until

from starforge_daemon.client.units import (
    STOP_MARGIN,
    Scope,
    escape_path,
    exec_word,
    shipped_units,
    unit_dir,
    unit_name,
)
from starforge_daemon.daemon.service import watchdog_interval

REPO = Path(__file__).resolve().parent.parent
ANALYZE = shutil.which("systemd-analyze")
ESCAPE = shutil.which("systemd-escape")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def verify_problems(unit: Path, scope: Scope, runtime_dir: Path) -> list[str]:
    """What ``systemd-analyze verify`` finds wrong with ``unit``; empty when it is clean.

    verify exits 0 on many mistakes (an unknown key or a bad value is only "ignored"), so every
    line that names the unit counts as a problem. No systemd needs to run: verify works offline;
    for a user unit it only needs a runtime directory.
    """
    assert ANALYZE is not None
    scope_args = ["--user"] if scope is Scope.USER else []
    result = subprocess.run([ANALYZE, *scope_args, "--man=no", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)})
    output = (result.stdout + result.stderr).splitlines()
    stem = unit.name.split("@")[0] + "@"
    problems = [line for line in output if stem in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}: {' | '.join(output)}")
    return problems


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    return folder


def settings_of(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, f"not a number of seconds: {value}"
    return float(match.group(1))


def test_shipped_units_are_what_the_renderer_makes() -> None:
    """The files in systemd/ and the installer's units cannot drift apart."""
    units = shipped_units()
    assert set(units) == {"system/starforge-daemon@.service", "user/starforge-daemon@.service"}
    for relative, text in units.items():
        assert (REPO / "systemd" / relative).read_text() == text, (
            f"systemd/{relative} is stale; regenerate it from "
            "starforge_daemon.client.units.shipped_units()")


@pytest.mark.parametrize("scope", list(Scope))
def test_shipped_units_have_the_promised_settings(scope: Scope) -> None:
    unit = settings_of((REPO / "systemd" / scope.value / "starforge-daemon@.service").read_text())
    assert unit["Type"] == ["notify"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["KillMode"] == ["process"]
    assert unit["Delegate"] == ["yes"]  # the daemon makes a cgroup per run below its own
    assert unit["ExecStart"] == ["/usr/bin/env starforge --project-dir %f daemon start "
                                 "--foreground"]
    assert unit["WorkingDirectory"] == ["%f"]
    assert seconds(unit["TimeoutStopSec"][0]) >= 10 + STOP_MARGIN  # AGENT_KILL_GRACE default
    assert seconds(unit["WatchdogSec"][0]) > 0
    assert unit["WantedBy"] == ["multi-user.target" if scope is Scope.SYSTEM
                                else "default.target"]
    assert "User" not in unit


@needs_analyze
@pytest.mark.parametrize("scope", list(Scope))
def test_shipped_units_pass_systemd_analyze_verify(scope: Scope, runtime_dir: Path) -> None:
    unit = REPO / "systemd" / scope.value / "starforge-daemon@.service"
    assert verify_problems(unit, scope, runtime_dir) == []


@needs_analyze
@pytest.mark.parametrize(("setting", "broken"), [
    ("KillMode=process", "KillMode=processes"),
    ("Restart=on-failure", "Restrat=on-failure"),
    ("ExecStart=/usr/bin/env", "ExecStart=/usr/bin/no-such-env"),
])
def test_the_verify_check_catches_broken_units(setting: str, broken: str, tmp_path: Path,
                                               runtime_dir: Path) -> None:
    """The check above would fail if a shipped unit had one of these mistakes."""
    text = shipped_units()["system/starforge-daemon@.service"]
    assert setting in text
    unit = tmp_path / "starforge-daemon@.service"
    unit.write_text(text.replace(setting, broken))
    assert verify_problems(unit, Scope.SYSTEM, runtime_dir) != []


def test_install_writes_a_system_unit_for_the_project(project: Project, tmp_path: Path) -> None:
    project.write_env(AGENT_KILL_GRACE=45)
    units = tmp_path / "units"
    result = project.cli("systemd", "install", "--unit-dir", str(units))
    name = unit_name(project.root)
    path = units / name
    assert f"created {path}" in result.stdout
    assert "systemctl daemon-reload" in result.stdout
    assert f"systemctl enable --now {shlex.quote(name)}" in result.stdout
    unit = settings_of(path.read_text())
    assert unit["ExecStart"] == [f"{exec_word(sys.executable)} -P -m starforge_daemon "
                                 "--project-dir %f daemon start --foreground"]
    assert unit["User"] == [pwd.getpwuid(project.root.stat().st_uid).pw_name]
    assert unit["TimeoutStopSec"] == [f"{45 + STOP_MARGIN}s"]
    assert unit["KillMode"] == ["process"] and unit["Type"] == ["notify"]
    assert unit["WantedBy"] == ["multi-user.target"]
    again = project.cli("systemd", "install", "--unit-dir", str(units))
    assert f"unchanged {path}" in again.stdout


def test_install_user_unit_goes_to_the_user_config(project: Project, tmp_path: Path) -> None:
    project.write_env()
    config = tmp_path / "config"
    result = project.cli("systemd", "install", "--user", env={"XDG_CONFIG_HOME": str(config)})
    path = config / "systemd" / "user" / unit_name(project.root)
    assert f"created {path}" in result.stdout
    assert "systemctl --user enable --now" in result.stdout
    assert "loginctl enable-linger" in result.stdout
    unit = settings_of(path.read_text())
    assert "User" not in unit and unit["WantedBy"] == ["default.target"]
    assert unit["TimeoutStopSec"] == [f"{math.ceil(project.settings['AGENT_KILL_GRACE']) + STOP_MARGIN}s"]
    assert unit_dir(Scope.USER, {"HOME": "/home/x"}) == Path("/home/x/.config/systemd/user")
    assert unit_dir(Scope.SYSTEM) == Path("/etc/systemd/system")


def test_install_refuses_a_project_with_a_bad_setting(project: Project, tmp_path: Path) -> None:
    project.write_env(AGENT_KILL_GRACE="soon")
    result = project.cli("systemd", "install", "--unit-dir", str(tmp_path), check=False)
    assert result.returncode != 0 and "AGENT_KILL_GRACE" in result.stderr
    assert list(tmp_path.glob("*.service")) == []


@needs_analyze
@pytest.mark.parametrize("scope", list(Scope))
def test_installed_units_pass_systemd_analyze_verify(scope: Scope, project: Project,
                                                     tmp_path: Path, runtime_dir: Path) -> None:
    project.write_env()
    units = tmp_path / "units"
    scope_args = ["--user"] if scope is Scope.USER else []
    project.cli("systemd", "install", *scope_args, "--unit-dir", str(units))
    assert verify_problems(units / unit_name(project.root), scope, runtime_dir) == []


@pytest.mark.parametrize(("path", "escaped"), [
    ("/", "-"),
    ("/home/me/repo", "home-me-repo"),
    ("/srv/my-repo/", "srv-my\\x2drepo"),
    ("/tmp/a b/.hidden/x.y_z:1", "tmp-a\\x20b-.hidden-x.y_z:1"),
    ("/.dot/ü", "\\x2edot-\\xc3\\xbc"),
])
def test_escape_path_is_systemd_escape(path: str, escaped: str) -> None:
    assert escape_path(path) == escaped
    if ESCAPE is not None:
        assert subprocess.run([ESCAPE, "--path", path], capture_output=True, text=True,
                              check=True).stdout.strip() == escaped


def test_exec_words_keep_spaces_percent_and_dollar_literal() -> None:
    assert exec_word("/usr/bin/python3") == "/usr/bin/python3"
    assert exec_word('/opt/my env/50%$"x') == '"/opt/my env/50%%$$\\"x"'


def test_watchdog_pings_at_half_the_interval_and_only_for_its_process() -> None:
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}, 42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, 42) == 0.1
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None


def unit_command(unit: Path, project_dir: Path) -> list[str]:
    """The unit's ExecStart as systemd would run it for ``project_dir`` (``%f``)."""
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    return [word.replace("%f", str(project_dir))
            for word in shlex.split(line.removeprefix("ExecStart="))]


def test_daemon_tells_systemd_ready_watchdog_and_stopping(project: Project,
                                                           tmp_path: Path) -> None:
    """Run the installed unit's command the way systemd would, with a fake NOTIFY_SOCKET."""
    project.write_env()
    units = tmp_path / "units"
    project.cli("systemd", "install", "--unit-dir", str(units))
    command = unit_command(units / unit_name(project.root), project.root)
    messages: list[str] = []
    with (tempfile.TemporaryDirectory(prefix="sf-") as short,  # AF_UNIX paths are short
          socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
          open(tmp_path / "daemon.stderr", "wb") as stderr):
        address = os.path.join(short, "notify")
        sock.bind(address)
        sock.setblocking(False)

        def received() -> list[str]:
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except BlockingIOError:
                    return messages

        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
        env.pop("WATCHDOG_PID", None)
        daemon = subprocess.Popen(command, cwd=project.root, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_until(lambda: received().count("WATCHDOG=1") >= 3, what="three watchdog pings")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
            received()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    ready = messages[0].splitlines()
    assert "READY=1" in ready and f"MAINPID={daemon.pid}" in ready, messages
    assert messages[-1] == "STOPPING=1", messages
    assert set(messages[1:-1]) == {"WATCHDOG=1"}, messages
    assert not project.paths.pid_file.exists()
    assert "SHUTDOWN" in project.log()
