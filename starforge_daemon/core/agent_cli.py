"""What the daemon knows about the agent CLIs it runs. Pure: no process is touched here."""

from __future__ import annotations

CLAUDE_BYPASS_FLAGS = ("--dangerously-skip-permissions", "bypassPermissions",
                       "--permission-mode=bypassPermissions")


PROMPT_ON_STDIN = ("claude",)  # CLIs that take their prompt on stdin (``claude --print``)


def program_name(words: list[str]) -> str:
    return words[0].rsplit("/", 1)[-1] if words else ""


def takes_prompt_on_stdin(words: list[str]) -> bool:
    return program_name(words) in PROMPT_ON_STDIN


def _bypasses_permissions(words: list[str]) -> bool:
    return any(word in CLAUDE_BYPASS_FLAGS for word in words[1:])


def root_bypass_refusal(words: list[str], uid: int, is_sandbox: str | None) -> str | None:
    """Why a daemon must not start: run as root, Claude Code refuses its permission bypass
    unless ``IS_SANDBOX=1``, so every run of such a command would fail. None when it can run.

    The daemon never sets ``IS_SANDBOX`` itself: declaring a machine a sandbox is the
    operator's choice.
    """
    if uid != 0 or is_sandbox == "1" or program_name(words) != "claude":
        return None
    if not _bypasses_permissions(words):
        return None
    return ("AGENT_COMMAND runs claude with its permission bypass as root, which Claude Code "
            "refuses unless IS_SANDBOX=1: run the daemon as a normal user (starforge systemd "
            "install --user, or User= in the system unit), or, only on a machine that is a "
            "sandbox, set IS_SANDBOX=1 in the daemon's environment")
