"""First contact: settings and triggers are checked by hand, fast, and explained in words.

A ``.env`` that does not parse stops the start; every message names where a bad value came
from and what is allowed, never a library's words, a regex or a type name. Clients that only
write triggers never load the daemon's heavy libraries; ``submit_trigger`` and ``starforge
trigger`` refuse what the daemon would reject and warn about misspelt fields. Runs that end
badly are logged at WARNING or ERROR.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import AGENT, Project

from starforge_daemon.client.submit import TriggerWarning, submit_trigger
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.settings import SETTINGS, Settings, SettingsError, load_settings

# Words that only make sense to someone who knows the code: a library, a regex, a type name.
LEAKS = ("pydantic", "Input should", "Value error", "validation error", "pattern", "^", "{0,63}",
         "Strict", "int_parsing", "bool_parsing", "literal_error", "dict_type", "NoneType",
         "ValueError", "type=")
NAME_RULE = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def assert_in_words(message: str) -> None:
    assert not [word for word in LEAKS if word in message], message
    assert "\n" not in message, message


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A project whose settings come from its ``.env`` alone."""
    for item in SETTINGS:
        monkeypatch.delenv(item.name, raising=False)
    project = ProjectPaths(tmp_path)
    project.ensure()
    return project


# -- settings --------------------------------------------------------------------------------


def test_env_file_that_does_not_parse_stops_daemon_start(project: Project) -> None:
    project.paths.ensure()
    (project.root / ".env").write_text("PARALLEL_DAEMON=true\n# the agent\n"
                                       "AGENT_COMMAND='unterminated\nAGENT_TIMEOUT=5\n")
    result = subprocess.run([sys.executable, "-m", "starforge_daemon", "--project-dir",
                             str(project.root), "daemon", "start"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(".env line 3: cannot parse AGENT_COMMAND='unterminated "
                         "(unterminated quote)"), line
    assert not project.paths.pid_file.exists()
    assert "START" not in project.log(), "no daemon ran"


@pytest.mark.parametrize(("text", "expected"), [
    ('A=1\nB="open\n', '.env line 2: cannot parse B=... (unterminated quote)'),
    ("MAX_RETRIES='2' and more\n",
     ".env line 1: cannot parse MAX_RETRIES='2' and more (text after the closing quote)"),
    ("A=1\n\n  \nAGENT TIMEOUT=5\n",
     ".env line 4: cannot parse AGENT TIMEOUT=... (a name must be one word before the '=')"),
    ("# retries\nMAX_RETRIES\n", ".env line 2: MAX_RETRIES has no value (write MAX_RETRIES=VALUE)"),
], ids=["secret-not-shown", "after-quote", "two-word-name", "no-value"])
def test_env_file_parse_errors_name_the_line_and_the_problem(paths: ProjectPaths, text: str,
                                                             expected: str) -> None:
    """Each names its line and what is wrong; a variable that is not a setting may hold an API
    key, so its value is never shown."""
    paths.env_file.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(paths)
    assert str(caught.value) == expected


@pytest.mark.parametrize(("source", "name", "value", "expected"), [
    ("env", "MAX_CONCURRENT_AGENTS", "abc",
     "environment: MAX_CONCURRENT_AGENTS='abc': must be a whole number of at least 1, or auto"),
    ("file", "PARALLEL_DAEMON", "maybe",
     ".env line 2: PARALLEL_DAEMON='maybe': must be true or false (also yes/no, on/off, 1/0)"),
    ("file", "AGENT_TIMEOUT", "0",
     ".env line 2: AGENT_TIMEOUT='0': must be a number greater than 0"),
    ("env", "AGENT_TIMEOUT", "nan", "environment: AGENT_TIMEOUT='nan': must be a number greater "
                                    "than 0"),
    ("file", "MAX_RETRIES", "101",
     ".env line 2: MAX_RETRIES='101': must be a whole number from 0 to 100"),
    ("file", "WORKTREE_MODE", "yes",
     ".env line 2: WORKTREE_MODE='yes': must be off, per-agent or per-ticket"),
    ("env", "AGENT_COMMAND", "claude {agnt}",
     "environment: AGENT_COMMAND='claude {agnt}': unknown placeholder {agnt}; the known ones "
     "are {agent}, {ticket}, {action}, {from_agent}, {trigger_file}, {prompt}, {prompt_file}, "
     "{run_id}, {upstream_results}"),
    ("env", "AGENT_COMMAND", "claude 'x",
     "environment: AGENT_COMMAND=\"claude 'x\": cannot be split into words: no closing "
     "quotation"),
    ("file", "AGENT_POOLS", "qa=a b",
     ".env line 2: AGENT_POOLS='qa=a b': 'a b' is not an agent name: names are 1 to 64 "
     "letters, digits, '.', '_' or '-', starting with a letter or digit"),
])
def test_bad_setting_says_where_it_came_from_and_what_is_allowed(
        paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch, source: str, name: str,
        value: str, expected: str) -> None:
    if source == "env":
        monkeypatch.setenv(name, value)
    else:
        paths.env_file.write_text(f"# settings\n{name}={json.dumps(value)}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(paths)
    assert str(caught.value) == expected
    assert_in_words(str(caught.value))


def test_environment_wins_over_env_file_and_env_file_is_expanded(
        paths: ProjectPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    paths.env_file.write_text("AGENT_TIMEOUT=bad\nBIN=/opt/agents\n"
                              "AGENT_COMMAND=${BIN}/run {prompt}\nPARALLEL_DAEMON=Yes\n")
    monkeypatch.setenv("AGENT_TIMEOUT", "42")
    settings = load_settings(paths)
    assert settings.AGENT_TIMEOUT == 42.0
    assert settings.command_words == ["/opt/agents/run", "{prompt}"]
    assert settings.PARALLEL_DAEMON is True


def test_the_settings_table_owns_each_default(paths: ProjectPaths) -> None:
    """Each default, written as ``.env`` would hold it, reads back as itself; the class keeps
    its defaults readable for code that has no settings (a broken ``.env``)."""
    assert Settings.AGENT_KILL_GRACE == 10.0
    assert [item.name for item in SETTINGS] == list(Settings.__dataclass_fields__)
    for item in SETTINGS:
        assert item.kind.parse(item.default_text) == item.default, item.name
        assert item.description and item.allowed, item.name
    paths.env_file.write_text("".join(f"{item.name}={json.dumps(item.default_text)}\n"
                                      for item in SETTINGS))
    assert load_settings(paths) == Settings()


def test_agent_program_is_found_as_the_daemon_would_start_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "my-agent"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    plain = folder / "plain.txt"
    plain.write_text("")
    monkeypatch.setenv("PATH", str(folder))
    assert Settings(AGENT_COMMAND="my-agent {prompt}").agent_program == str(script)
    assert Settings(AGENT_COMMAND=f"{script} {{prompt}}").agent_program == str(script)
    assert Settings(AGENT_COMMAND="plain.txt {prompt}").agent_program is None
    assert Settings(AGENT_COMMAND=f"{plain} {{prompt}}").agent_program is None
    assert Settings().agent_program is None, "claude is not in this PATH"


# -- triggers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    (b'{"to_agent": "a b"}', f'to_agent: {NAME_RULE} (got "a b")'),
    (b'{"to_agent": 7}', f"to_agent: {NAME_RULE} (got 7)"),
    (b'{"from_agent": "x"}', "to_agent: required field is missing"),
    (b'{"to_agent": "a", "priority": "high"}',
     'priority: must be a whole number from -1000000 to 1000000 (got "high")'),
    (b'{"to_agent": "a", "priority": 2.0}',
     "priority: must be a whole number from -1000000 to 1000000 (got 2.0)"),
    (b'{"to_agent": "a", "max_retries": true}',
     "max_retries: must be a whole number from 0 to 100 (got true)"),
    (b'{"to_agent": "a", "action": 7}', "action: must be a string (got 7)"),
    (b'{"to_agent": "a", "ticket": 1.5}', "ticket: must be a string or a whole number (got 1.5)"),
    (b'{"to_agent": "a", "context": [1]}', "context: must be a JSON object (got [1])"),
    (b'{"to_agent": "a" "action": "x"}',
     "not valid JSON: Expecting ',' delimiter at line 1 column 18"),
    (b'{"to_agent": "a", "priority": Infinity}', "not valid JSON: Infinity is not a JSON value"),
    (b'["to_agent"]', "not a JSON object"),
], ids=lambda value: value.decode()[:40] if isinstance(value, bytes) else None)
def test_trigger_reasons_say_what_is_allowed_in_words(data: bytes, expected: str) -> None:
    with pytest.raises(InvalidTrigger) as caught:
        parse_trigger(data)
    assert str(caught.value) == expected
    assert_in_words(expected)


def trigger_files(paths: ProjectPaths) -> list[str]:
    """Every file in the queue folder, hidden temporary ones included."""
    return sorted(path.name for path in paths.triggers.iterdir() if not path.is_dir())


def test_submit_trigger_refuses_what_the_daemon_would_reject(paths: ProjectPaths) -> None:
    paths.env_file.write_text("MAX_TRIGGER_BYTES=100\n")
    with pytest.raises(InvalidTrigger, match=r"^to_agent: must be 1 to 64 letters"):
        submit_trigger("a b", project_dir=paths.root)
    with pytest.raises(InvalidTrigger) as caught:
        submit_trigger("agent-a", project_dir=paths.root, message="x" * 100, id="x1")
    assert str(caught.value) == "too big: 146 bytes (MAX_TRIGGER_BYTES=100)"
    assert trigger_files(paths) == []
    paths.env_file.write_text("MAX_TRIGGER_BYTES=64\nAGENT_COMMAND='open\n")
    with pytest.raises(SettingsError, match=r"^\.env line 2: cannot parse"):
        submit_trigger("agent-a", project_dir=paths.root)
    assert trigger_files(paths) == []


def test_submit_trigger_writes_what_the_daemon_reads(paths: ProjectPaths) -> None:
    path = submit_trigger("junior-dev-a", project_dir=paths.root, ticket=52, note="kept",
                          action="implement_ticket", from_agent="orchestrator",
                          context={"ticket": 52}, id="impl-52", after=["plan-52"])
    assert path.name == "impl-52.trigger"
    assert path.read_bytes() == (b'{"to_agent":"junior-dev-a","from_agent":"orchestrator",'
                                 b'"action":"implement_ticket","ticket":52,'
                                 b'"context":{"ticket":52},"id":"impl-52","after":["plan-52"],'
                                 b'"note":"kept"}\n')
    assert parse_trigger(path.read_bytes()).extra == {"note": "kept"}


def test_submit_trigger_warns_about_a_misspelt_field_and_still_writes_it(
        paths: ProjectPaths) -> None:
    with pytest.warns(TriggerWarning) as caught:
        path = submit_trigger("agent-a", project_dir=paths.root, max_retires=3)
    assert [str(warning.message) for warning in caught] == [
        "unknown field max_retires: did you mean max_retries?"]
    assert json.loads(path.read_bytes()) == {"to_agent": "agent-a", "max_retires": 3,
                                             "id": path.name.removesuffix(".trigger")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        submit_trigger("agent-a", project_dir=paths.root, reviewer="qa-1")  # not a typo


def test_trigger_command_warns_about_a_misspelt_field_and_refuses_a_big_trigger(
        project: Project) -> None:
    project.paths.ensure()
    project.write_env(MAX_TRIGGER_BYTES=100)
    written = project.cli("trigger", "agent-a", "--field", "max_retires=3",
                          "--field", "trace_id=t-1")
    assert written.stderr == "warning: unknown field max_retires: did you mean max_retries?\n"
    path = Path(written.stdout.strip())
    assert json.loads(path.read_bytes()) == {"to_agent": "agent-a", "trace_id": "t-1",
                                             "max_retires": 3,
                                             "id": path.name.removesuffix(".trigger")}
    refused = project.cli("trigger", "agent-a", "--message", "x" * 100, "--id", "x1",
                          check=False)
    assert refused.returncode == 2
    assert "invalid trigger: too big: 146 bytes (MAX_TRIGGER_BYTES=100)" in refused.stderr
    assert trigger_files(project.paths) == [path.name]


def test_clients_never_load_the_daemons_libraries(paths: ProjectPaths) -> None:
    """``starforge trigger`` runs on every handoff: what it imports and runs stays light."""
    paths.env_file.write_text("MAX_TRIGGER_BYTES=4096\n")
    code = ("import json, sys\n"
            "import starforge_daemon.store.results, starforge_daemon.store.journal\n"
            "import starforge_daemon.store.attempts, starforge_daemon.store.history\n"
            "import starforge_daemon.store.state, starforge_daemon.store.slots\n"
            "import starforge_daemon.store.settings\n"
            "from starforge_daemon import submit_trigger\n"
            f"submit_trigger('agent-a', project_dir={str(paths.root)!r}, action='x')\n"
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    loaded = set(json.loads(result.stdout))
    assert "starforge_daemon" in loaded and "dotenv" in loaded
    heavy = {"pydantic", "pydantic_core", "pydantic_settings", "structlog", "psutil", "watchdog"}
    assert loaded & heavy == set()


# -- log levels ------------------------------------------------------------------------------


def event_lines(project: Project, event: str) -> list[tuple[str, str]]:
    """(level, line) of each daemon.log line whose event word is ``event``."""
    found = []
    for line in project.log().splitlines():
        words = line.split()
        if len(words) > 2 and words[2] == event:
            found.append((words[1], line))
    return found


def test_runs_that_end_badly_are_logged_as_warnings_and_errors(project: Project,
                                                               tmp_path: Path) -> None:
    """Succeeded at INFO, failed at WARNING, could not start at ERROR: ``grep "ERROR\\|WARN"``
    finds the trouble and ``grep FINISH`` still finds every end. The MODE line and the state
    file show the agent program the daemon found."""
    program = tmp_path / "agent-python"
    program.symlink_to(sys.executable)
    project.trigger("ok.trigger", "agent-ok")
    project.trigger("bad.trigger", "agent-bad", context={"exit": 3})
    project.start(AGENT_COMMAND=f"{program} {AGENT}")
    project.wait_archived(2)
    program.unlink()  # the next run cannot start
    project.trigger("gone.trigger", "agent-gone")
    project.wait_archived(3)  # each FINISH line is written before its trigger is archived
    levels = {line.split(" agent=")[1].split()[0]: level
              for level, line in event_lines(project, "FINISH")}
    assert levels == {"agent-ok": "INFO", "agent-bad": "WARNING", "agent-gone": "ERROR"}
    modes = event_lines(project, "MODE")
    [(mode_level, mode)] = [(level, line) for level, line in modes if " agent=" in line]
    assert mode_level == "INFO" and f"agent={program} " in mode
    assert [line for _, line in modes if "containment: " in line], "which containment is active"
    state = json.loads(project.paths.state_file.read_text())
    assert state["agent_program"] == str(program)
