"""Turning a trigger into an agent's argv and environment. Pure: no process is touched here.

``AGENT_COMMAND`` was split into words once (``shlex``); each placeholder is replaced inside its
word, so a trigger's text always stays one argument and never meets a shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starforge_daemon.core.models import Run, Trigger

PLACEHOLDERS = ("agent", "ticket", "action", "from_agent", "trigger_file", "prompt", "prompt_file",
                "run_id", "upstream_results")
MAX_ARG_BYTES = 131072  # Linux's MAX_ARG_STRLEN: one argument, its terminating NUL included
_POINTER_BYTES = 8  # each argument and variable also costs the kernel a pointer
_UTF8_MOST = 4  # bytes of one character in UTF-8, at most
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders_in(word: str) -> set[str]:
    """Every ``{name}`` in ``word``, known or not."""
    return set(_PLACEHOLDER.findall(word))


def unknown_placeholders(words: list[str], known: tuple[str, ...] = PLACEHOLDERS) -> list[str]:
    return sorted({name for word in words for name in placeholders_in(word)} - set(known))


def prompt_for(agent: str, trigger: Trigger, trigger_file: str) -> str:
    """The prompt: who the agent is, the trigger, and how to hand work on (the project folder
    differs from the working directory when runs work in git worktrees)."""
    return (
        f"You are the StarForge agent '{agent}'. Another agent handed you work through the "
        f"trigger file {trigger_file}. The trigger:\n"
        f"{trigger.to_json()}\n"
        "Carry out the requested action.\n"
        "The project is at $STARFORGE_PROJECT_DIR (your working directory may be a worktree of it).\n"
        "To hand work on, run: starforge --project-dir \"$STARFORGE_PROJECT_DIR\" trigger AGENT "
        f"--from {agent} --action ACTION [--ticket ID] [--message TEXT]"
    )


def placeholder_values(run: Run, trigger: Trigger, trigger_file: str,
                       prompt_file: str, upstream_file: str = "", *,
                       prompt: bool = True) -> dict[str, str]:
    """``upstream_file``: the hand-off file of a trigger with ``after`` (else empty);
    ``prompt``: whether the command takes the prompt (else it is left empty, not written)."""
    return {
        "agent": run.agent,
        "ticket": run.ticket or "",
        "action": run.action or "",
        "from_agent": run.from_agent or "",
        "trigger_file": trigger_file,
        "prompt": prompt_for(run.agent, trigger, trigger_file) if prompt else "",
        "prompt_file": prompt_file,
        "run_id": run.run_id,
        "upstream_results": upstream_file,
    }


def uses_placeholder(words: list[str], name: str) -> bool:
    return any(name in placeholders_in(word) for word in words)


def _size(text: str) -> int:
    return len(text.encode(errors="surrogateescape")) + 1


def argv_problem(argv: list[str], env: Mapping[str, str], total_limit: int) -> str | None:
    """Why the kernel would refuse to start ``argv`` with ``env`` (E2BIG), or None: one
    argument may hold at most MAX_ARG_BYTES, all of them and the environment ``total_limit``."""
    if _surely_fits(argv, env, total_limit):
        return None
    for index, word in enumerate(argv):
        size = _size(word)
        if size > MAX_ARG_BYTES:
            return (f"AGENT_COMMAND puts {size - 1} bytes into argument {index}, over Linux's "
                    f"limit of {MAX_ARG_BYTES - 1} bytes for one argument: hand the prompt over "
                    "in {prompt_file} or on stdin (AGENT_STDIN), not in {prompt}")
    total = sum(_size(word) + _POINTER_BYTES for word in argv) + sum(
        _size(f"{name}={value}") + _POINTER_BYTES for name, value in env.items())
    if total > total_limit:
        return (f"the agent's arguments and environment take {total} bytes, over this system's "
                f"limit of {total_limit} bytes")
    return None


def _surely_fits(argv: list[str], env: Mapping[str, str], total_limit: int) -> bool:
    """Within both limits even at UTF-8's four bytes per character: true of nearly every
    start, and found without encoding each string."""
    most = _UTF8_MOST * max(map(len, argv), default=0) + 1
    total = sum(map(len, argv)) + sum(len(name) + len(value) + 1 for name, value in env.items())
    slots = (len(argv) + len(env)) * (_POINTER_BYTES + 1)
    return most <= MAX_ARG_BYTES and _UTF8_MOST * total + slots <= total_limit


def render_argv(words: list[str], values: Mapping[str, str]) -> list[str]:
    def value(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return [_PLACEHOLDER.sub(value, word) for word in words]


def run_environment(base: Mapping[str, str], values: Mapping[str, str],
                    project_dir: str) -> dict[str, str]:
    return {
        **base,
        "STARFORGE_AGENT": values["agent"],
        "STARFORGE_TICKET": values["ticket"],
        "STARFORGE_ACTION": values["action"],
        "STARFORGE_FROM_AGENT": values["from_agent"],
        "STARFORGE_TRIGGER_FILE": values["trigger_file"],
        "STARFORGE_RUN_ID": values["run_id"],
        "STARFORGE_PROJECT_DIR": project_dir,
        **({"STARFORGE_UPSTREAM_RESULTS": values["upstream_results"]}
           if values["upstream_results"] else {}),
    }
