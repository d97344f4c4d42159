"""How a run is asked to stop (AGENT_STOP_SIGNAL), what the daemon refuses at start (Claude Code's
permission bypass as root), and run limits this host cannot enforce, said at start."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project, wait_until

from starforge_daemon.core.agent_cli import root_bypass_refusal
from starforge_daemon.runtime.local import containment
from starforge_daemon.store.settings import SETTINGS, Settings

# Records which signal stopped it, then exits 0: a clean stop that the daemon must still
# archive as stopped, not as succeeded.
SIGNAL_RECORDER = """\
import os, signal, sys, time
marker = sys.argv[1]
def stop(number, _frame):
    with open(marker + ".tmp", "w") as file:
        file.write(signal.Signals(number).name)
    os.rename(marker + ".tmp", marker)
    sys.exit(0)
for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
    signal.signal(getattr(signal, name), stop)
open(marker + ".ready", "w").close()
while True:
    time.sleep(1)
"""


@pytest.mark.parametrize("setting", [None, "SIGUSR1", "term"])
def test_agent_stop_sends_the_stop_signal(project: Project, setting: str | None) -> None:
    recorder = project.root / "recorder.py"
    recorder.write_text(SIGNAL_RECORDER)
    marker = project.root / "stopped-by"
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(recorder))} {shlex.quote(str(marker))}"
    settings = {"AGENT_COMMAND": command, "AGENT_KILL_GRACE": 30}
    if setting is not None:
        settings["AGENT_STOP_SIGNAL"] = setting
    project.start(**settings)
    project.trigger("t.trigger")
    wait_until(lambda: Path(f"{marker}.ready").exists(), what="the agent to start")
    project.cli("agent", "stop", "agent-a")
    project.wait_archived(1)
    expected = {None: "SIGINT", "SIGUSR1": "SIGUSR1", "term": "SIGTERM"}[setting]
    assert marker.read_text() == expected
    result = project.result("t.trigger")
    assert result["outcome"] == "killed" and result["exit_code"] == 0, result
    assert "stopped by the operator" in result["reason"]


@pytest.mark.parametrize("value", ["SIGKILL", "9", "STOP", "SIGNOPE", "0"])
def test_a_stop_signal_that_cannot_be_caught_is_refused(project: Project, value: str) -> None:
    project.write_env(AGENT_STOP_SIGNAL=value)
    started = project.cli("daemon", "start", check=False)
    assert started.returncode != 0
    assert f"AGENT_STOP_SIGNAL={value!r}" in started.stderr
    assert "Traceback" not in started.stderr


def test_root_refusal_names_both_ways_out() -> None:
    bypass = ["claude", "--print", "--permission-mode", "bypassPermissions"]
    refusal = root_bypass_refusal(bypass, 0, None)
    assert refusal is not None
    assert "IS_SANDBOX=1" in refusal and "normal user" in refusal
    assert root_bypass_refusal(bypass, 0, "1") is None
    assert root_bypass_refusal(bypass, 0, "true") is not None, "Claude Code wants exactly 1"
    assert root_bypass_refusal(bypass, 1000, None) is None
    assert root_bypass_refusal(["claude", "--dangerously-skip-permissions"], 0, None)
    assert root_bypass_refusal(["claude", "--print"], 0, None) is None
    assert root_bypass_refusal(["/opt/bin/claude", "--permission-mode=bypassPermissions"], 0, "")


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is for root; this user is not")
def test_daemon_start_as_root_refuses_claudes_bypass_without_is_sandbox(project: Project) -> None:
    # the program is never run: the refusal comes first; a file named claude is enough
    claude = project.root / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\nexit 0\n")
    claude.chmod(0o755)
    project.write_env(AGENT_COMMAND=f"{claude} --print --permission-mode bypassPermissions")
    environment = {key: value for key, value in os.environ.items() if key != "IS_SANDBOX"}
    refused = start_with_exactly(project, environment)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "IS_SANDBOX=1" in lines[0], refused.stderr
    assert not project.paths.pid_file.exists()
    doctor = subprocess.run([sys.executable, "-m", "starforge_daemon", "--project-dir",
                             str(project.root), "doctor"], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, env=environment)
    assert doctor.returncode != 0 and "✗ permissions" in doctor.stdout, doctor.stdout
    started = start_with_exactly(project, {**environment, "IS_SANDBOX": "1"})
    assert started.returncode == 0, started.stderr
    project.stop()


def start_with_exactly(project: Project, environment: dict[str, str],
                       ) -> subprocess.CompletedProcess[str]:
    """``daemon start`` with exactly ``environment`` (Project.cli adds to os.environ)."""
    return subprocess.run([sys.executable, "-m", "starforge_daemon", "--project-dir",
                           str(project.root), "daemon", "start"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=environment)


def test_limits_the_host_cannot_enforce_are_said_at_start(project: Project) -> None:
    project.write_env(AGENT_MEMORY_MAX="1G", AGENT_PIDS_MAX=64)
    host = containment.prepare(containment.detect(project.root))
    started = project.cli("daemon", "start")
    log = project.log()
    assert f"MODE {host.text}" in log.replace("INFO    ", "")
    state = json.loads(project.paths.state_file.read_text())
    assert state["containment"].startswith("containment: ")
    for name, controller in (("AGENT_MEMORY_MAX", "memory"), ("AGENT_PIDS_MAX", "pids")):
        said = f"{name}=" in started.stderr
        assert said == (controller not in host.controllers), (name, started.stderr)
        if said:
            assert f"{name}=" in log and "cannot be enforced on this host" in log
    project.stop()


def test_byte_sizes_and_signal_names_parse_in_the_users_words() -> None:
    assert Settings.AGENT_STOP_SIGNAL == "SIGINT"
    kinds = {item.name: item.kind for item in SETTINGS}
    assert kinds["AGENT_MEMORY_MAX"].parse("512M") == 512 << 20
    assert kinds["AGENT_MEMORY_MAX"].parse("2GiB") == 2 << 30
    assert kinds["AGENT_MEMORY_MAX"].parse("") is None
    assert kinds["AGENT_PIDS_MAX"].parse("64") == 64
    assert kinds["AGENT_STOP_SIGNAL"].parse("usr1") == "SIGUSR1"
    for bad in ("lots", "-1", "1.5G"):
        with pytest.raises(ValueError):
            kinds["AGENT_MEMORY_MAX"].parse(bad)
