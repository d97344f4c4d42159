"""Settings: the environment first, then the project's ``.env``, each value checked.

The fields of :class:`Settings` are the one table of settings: each declares its name, type,
default, what it accepts (a kind from ``setting_kinds``) and what it means. ``.env`` is read by
``env_file``. No settings library: ``starforge trigger`` loads this module on every handoff,
and its messages say what is allowed in the user's words.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from starforge_daemon.core.agent_cli import takes_prompt_on_stdin
from starforge_daemon.core.command import placeholders_in, uses_placeholder
from starforge_daemon.core.notice_kinds import DEFAULT_NOTIFY_ON
from starforge_daemon.core.streams import OUTPUT_KINDS, adapter_kind
from starforge_daemon.store.env_file import EnvValue, SettingsError, read_env_file
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.setting_choices import ResumeMode, RunnerKind, StdinMode, WorktreeMode
from starforge_daemon.store.setting_kinds import (
    AGENT_COMMAND,
    APPRISE_URLS,
    BYTE_SIZE,
    FINISH_COMMAND,
    LISTEN_ADDRESS,
    NOTIFY_KINDS,
    OPTIONAL_AMOUNT,
    OPTIONAL_COUNT,
    OPTIONAL_WORD,
    OPTIONS,
    POOLS,
    REVISION,
    SIGNAL_NAME,
    SWITCH,
    Kind,
    choice,
    number,
    parse_pools,
    whole_number,
)

DEFAULT_AGENT_COMMAND = ("claude --print --permission-mode bypassPermissions "
                         "--output-format stream-json --verbose")  # prompt: stdin


AGENTS_PER_CPU = 4
MEMORY_PER_AGENT = 512 * 1024 * 1024


def automatic_limit() -> int:
    """``MAX_CONCURRENT_AGENTS=auto``: agents mostly wait on their model, so a few per CPU,
    but never more than one per 512 MiB of memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min((os.cpu_count() or 1) * AGENTS_PER_CPU, memory // MEMORY_PER_AGENT))


CLAUDE_INSTALL = "install Claude Code (npm install -g @anthropic-ai/claude-code)"


OutputKind = StrEnum("OutputKind", {kind.upper(): kind for kind in OUTPUT_KINDS})  # type: ignore[misc]


# -- the settings ------------------------------------------------------------------------------


def setting(default: Any, kind: Kind, description: str) -> Any:
    """One row of the settings table, declared as a field of :class:`Settings`."""
    return field(default=default, metadata={"kind": kind, "description": description})


@dataclass(frozen=True)
class Settings:
    """The project's settings. Class attributes hold the defaults (``Settings.AGENT_TIMEOUT``);
    :func:`load_settings` reads and checks the real ones. No ``slots``: they would hide the
    class-level defaults."""

    PARALLEL_DAEMON: bool = setting(
        False, SWITCH, "false: one run at a time, strict FIFO; true: runs in parallel")
    MAX_CONCURRENT_AGENTS: int | str = setting(
        999, whole_number(1, also="auto"),
        "parallel mode: runs at once (still one per agent name); auto: 4 per CPU, at most one "
        "per 512 MiB of memory")
    SEQUENTIAL_HANDOVER: int = setting(
        2, whole_number(0, 8),
        "sequential mode, output read as text: the next triggers claimed and handed to the keeper "
        "while a run goes, each to start the moment the one before ends (0: none)")
    PROCESS_MONITOR_INTERVAL: float = setting(
        10.0, number(0, above=True), "seconds between sweeps (missed triggers, upkeep)")
    AGENT_TIMEOUT: float = setting(
        1800.0, number(0, above=True), "seconds a run may take before it is stopped")
    MAX_AGENT_TIMEOUT: float | None = setting(
        None, OPTIONAL_AMOUNT, "the longest a trigger's own \"timeout\" may ask for, in seconds")
    DEPENDENCY_WAIT: float = setting(
        3600.0, number(0), "seconds a trigger awaits an \"after\" id that no trigger has yet")
    AGENT_KILL_GRACE: float = setting(
        10.0, number(0),
        "seconds between the stop signal and SIGKILL of the run's whole container")
    AGENT_STOP_SIGNAL: str = setting(
        "SIGINT", SIGNAL_NAME,
        "the signal that asks a run to stop (SIGINT stops Claude Code cleanly)")
    AGENT_MEMORY_MAX: int | None = setting(
        None, BYTE_SIZE,
        "a run's memory limit (cgroup memory.max); over it the run ends as oom")
    AGENT_PIDS_MAX: int | None = setting(
        None, OPTIONAL_COUNT, "the most processes a run may have at once (cgroup pids.max)")
    AGENT_COMMAND: str = setting(
        DEFAULT_AGENT_COMMAND,
        AGENT_COMMAND,
        "the agent command template, split into words like a shell would, never run by one")
    AGENT_STDIN: StdinMode = setting(  # noqa: RUF009 (setting() is a field())
        StdinMode.AUTO, choice(StdinMode),
        "a run's stdin: auto: the prompt for Claude Code unless {prompt} or {prompt_file} "
        "hands it over, else /dev/null; prompt: the prompt; null: /dev/null")
    AGENT_OUTPUT: OutputKind = setting(  # noqa: RUF009 (setting() is a field())
        OutputKind("auto"), choice(OutputKind),
        "how a run's output is read: auto: by the command's program (claude, codex, gemini: "
        "their JSON-lines events), else text; or text, claude, codex, gemini")
    AGENT_FIRST_OUTPUT_TIMEOUT: float | None = setting(
        None, OPTIONAL_AMOUNT,
        "runs read as events: stopped as stalled when no event came this many seconds after "
        "the start")
    AGENT_STALL_TIMEOUT: float | None = setting(
        None, OPTIONAL_AMOUNT,
        "runs read as events: stopped as stalled after this many seconds without an event")
    AGENT_RESULT_GRACE: float | None = setting(
        30.0, OPTIONAL_AMOUNT,
        "runs read as events: stopped this many seconds after their result line if still "
        "running; the outcome is the result's")
    FAIL_ON_PERMISSION_DENIAL: bool = setting(
        False, SWITCH, "a run whose agent reports a denied tool permission fails")
    MAX_RUN_COST_USD: float | None = setting(
        None, OPTIONAL_AMOUNT, "a run whose cost passes this many US dollars is stopped "
                               "(outcome over_budget)")
    DAILY_COST_LIMIT_USD: float | None = setting(
        None, OPTIONAL_AMOUNT,
        "no new run starts once the runs of the day (UTC) have cost this many US dollars")
    RATE_LIMIT_HOLD: float = setting(
        60.0, number(0, above=True),
        "seconds new runs wait after a rate limit whose CLI gave no reset time")
    RATE_LIMIT_MAX_HOLD: float = setting(
        3600.0, number(0, above=True), "the longest a rate limit holds new runs, in seconds")
    RESUME_SESSIONS: ResumeMode = setting(  # noqa: RUF009 (setting() is a field())
        ResumeMode.OFF, choice(ResumeMode),
        "per-ticket: a Claude Code run resumes the session of its ticket's previous run "
        "(--resume)")
    MAX_TRIGGER_BYTES: int = setting(
        1024 * 1024, whole_number(64), "larger trigger files are rejected without being read")
    TRIGGER_SETTLE_SECONDS: float = setting(
        2.0, number(0),
        "a trigger that does not parse yet and was written this recently gets another look")
    ALLOW_FOREIGN_TRIGGERS: bool = setting(
        False, SWITCH, "accept trigger files owned by another user than the daemon's")
    LOG_MAX_BYTES: int = setting(
        100 * 1024 * 1024, whole_number(4096),
        "per agent: the most its run logs may take; also the cap of one run's log (cut back as "
        "it passes it; a log read as text from half a second into its run, or at its end)")
    LOG_RETENTION_DAYS: float = setting(
        7.0, number(0, above=True), "run logs older than this many days are deleted")
    LOG_COMPRESS_AFTER_HOURS: float = setting(
        24.0, number(0), "run logs older than this many hours are gzipped")
    DAEMON_LOG_MAX_BYTES: int = setting(
        10 * 1024 * 1024, whole_number(4096), "daemon.log rotates at this size")
    MAX_RETRIES: int = setting(
        0, whole_number(0, 100),
        "retries after a failed or timed-out run (a trigger's max_retries overrides it)")
    RETRY_BACKOFF: float = setting(
        30.0, number(0), "seconds before the first retry, doubling with each further one")
    RETRY_BACKOFF_MAX: float = setting(3600.0, number(0), "the longest wait before a retry")
    AGENT_POOLS: str = setting(
        "", POOLS,
        "pools of interchangeable agents: junior-dev=junior-dev-a,junior-dev-b; qa=qa-1")
    MIN_FREE_MEMORY_PERCENT: float = setting(
        10.0, number(0, 100), "no new run starts while less memory than this is available")
    WORKTREE_MODE: WorktreeMode = setting(  # noqa: RUF009 (setting() is a field())
        WorktreeMode.OFF, choice(WorktreeMode),
        "off: runs work in the project root; per-agent / per-ticket: in a git worktree")
    WORKTREE_BASE: str = setting(
        "HEAD", REVISION,
        "the commit a new worktree branch starts from")
    RUNNER: RunnerKind = setting(  # noqa: RUF009 (setting() is a field())
        RunnerKind.LOCAL, choice(RunnerKind),
        "local: runs are processes on this machine; slurm: each run is a Slurm batch job")
    SLURM_PARTITION: str | None = setting(
        None, OPTIONAL_WORD, "RUNNER=slurm: the partition of the runs' jobs (empty: the default)")
    SLURM_EXTRA_ARGS: str = setting(
        "", OPTIONS, "RUNNER=slurm: more sbatch options for every run (--account=lab --mem=8G)")
    METRICS_ADDRESS: str | None = setting(
        None, LISTEN_ADDRESS,
        "serve Prometheus metrics (/metrics) and a health check (/healthz) on this HOST:PORT")
    METRICS_ALLOW_REMOTE: bool = setting(
        False, SWITCH, "let METRICS_ADDRESS be an address other machines can reach")
    NOTIFY_URLS: str = setting("", APPRISE_URLS, "where to send notifications: Apprise URLs")
    NOTIFY_ON: str = setting(DEFAULT_NOTIFY_ON, NOTIFY_KINDS, "what is notified")
    NOTIFY_PROGRESS_EVERY: float | None = setting(
        None, OPTIONAL_AMOUNT, "seconds between notices of each long run's progress")
    NOTIFY_MIN_INTERVAL: float = setting(
        60.0, number(0), "seconds between two messages of one kind; the rest wait, grouped")
    ON_FINISH_COMMAND: str = setting(
        "", FINISH_COMMAND, "a command run after each trigger's last run, without a shell")

    @property
    def pools(self) -> dict[str, tuple[str, ...]]:
        return parse_pools(self.AGENT_POOLS)

    @property
    def command_words(self) -> list[str]:
        return shlex.split(self.AGENT_COMMAND)

    @property
    def prompt_on_stdin(self) -> bool:
        if self.AGENT_STDIN is StdinMode.AUTO:
            words = self.command_words
            return takes_prompt_on_stdin(words) and not (
                uses_placeholder(words, "prompt") or uses_placeholder(words, "prompt_file"))
        return self.AGENT_STDIN is StdinMode.PROMPT

    @property
    def agent_program_problem(self) -> str | None:
        """Why no run of ``AGENT_COMMAND`` could start its program, or None. A program named by
        a placeholder is chosen per trigger, so only its runs can tell."""
        program = self.command_words[0]
        if placeholders_in(program) or self.agent_program:
            return None
        if "/" in program:
            return (f"AGENT_COMMAND runs {program!r}, which is not an executable file: fix "
                    "AGENT_COMMAND in .env")
        advice = CLAUDE_INSTALL if program == "claude" else f"install {program}"
        return f"AGENT_COMMAND runs {program!r}, which is not on PATH: {advice} or set AGENT_COMMAND in .env"

    @property
    def agent_program(self) -> str | None:
        """The agent command's program as an absolute path: looked up on PATH, or taken as
        it is (from the current directory, the project root in the daemon) when it names a
        path. None when there is no such executable."""
        import shutil  # a few milliseconds that only the daemon and its checks pay

        program = self.command_words[0]
        if "/" not in program:
            return shutil.which(program)
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return os.path.abspath(program)
        return None

    @property
    def output_kind(self) -> str:
        """The adapter that reads a run's output (``text``: none)."""
        return adapter_kind(self.AGENT_OUTPUT.value, self.command_words[0])

    @property
    def concurrency_limit(self) -> int:
        if not self.PARALLEL_DAEMON:
            return 1
        if self.MAX_CONCURRENT_AGENTS == "auto":
            return automatic_limit()
        return int(self.MAX_CONCURRENT_AGENTS)

    @property
    def mode_text(self) -> str:
        if self.PARALLEL_DAEMON:
            automatic = " (auto)" if self.MAX_CONCURRENT_AGENTS == "auto" else ""
            return (f"Parallel execution enabled (up to {self.concurrency_limit}{automatic} "
                    "agents at once)")
        return "Sequential execution (one agent at a time, strict FIFO)"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the table declares it, for listings and templates."""

    name: str
    default: Any
    kind: Kind
    description: str

    @property
    def allowed(self) -> str:
        return self.kind.allowed

    @property
    def default_text(self) -> str:
        """The default as written in ``.env``."""
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(spec.name, spec.default, spec.metadata["kind"], spec.metadata["description"])
    for spec in fields(Settings))
_SETTING_NAMES = frozenset(item.name for item in SETTINGS)


# -- reading -----------------------------------------------------------------------------------


def env_file_values(paths: ProjectPaths) -> dict[str, EnvValue]:
    """The project's ``.env`` ({} without one); raises :class:`SettingsError` when it does not
    parse."""
    return read_env_file(paths.env_file, _SETTING_NAMES) if paths.env_file.is_file() else {}


def load_settings(paths: ProjectPaths) -> Settings:
    """Read settings, the environment first, then ``.env``; raises :class:`SettingsError` for
    a ``.env`` that does not parse or a bad value, saying where it came from."""
    from_file = env_file_values(paths)
    values: dict[str, Any] = {}
    for item in SETTINGS:
        if item.name in os.environ:
            text: str | None = os.environ[item.name]
            where = "environment"
        elif item.name in from_file:
            text = from_file[item.name].value
            where = f"{paths.env_file.name} line {from_file[item.name].line}"
        else:
            continue
        if text is None:
            raise SettingsError(f"{where}: {item.name} has no value (write {item.name}=VALUE)")
        try:
            values[item.name] = item.kind.parse(text)
        except ValueError as error:
            problem = str(error) or f"must be {item.allowed}"
            raise SettingsError(f"{where}: {item.name}={text!r}: {problem}") from None
    return Settings(**values)


def dotenv_extras(paths: ProjectPaths) -> dict[str, str]:
    """Variables from ``.env`` that the real environment lacks; agents see them too."""
    return {name: entry.value for name, entry in env_file_values(paths).items()
            if entry.value is not None and name not in os.environ}
