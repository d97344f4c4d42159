"""Settings (environment, then the project's ``.env``) and the project's paths."""

from __future__ import annotations

import os
import re
import shlex
from enum import StrEnum
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .models import AGENT_NAME_PATTERN
from .paths import ProjectPaths

PLACEHOLDERS = ("agent", "ticket", "action", "from_agent", "trigger_file", "prompt", "run_id")
DEFAULT_AGENT_COMMAND = "claude --print --permission-mode bypassPermissions {prompt}"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


AGENTS_PER_CPU = 4
MEMORY_PER_AGENT = 512 * 1024 * 1024


def automatic_limit() -> int:
    """``MAX_CONCURRENT_AGENTS=auto``: agents mostly wait on their model, so a few per CPU,
    but never more than one per 512 MiB of memory."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min((os.cpu_count() or 1) * AGENTS_PER_CPU, memory // MEMORY_PER_AGENT))


def parse_pools(text: str) -> dict[str, tuple[str, ...]]:
    """``pool=a,b,c; other=d,e`` -> ``{"pool": ("a", "b", "c"), "other": ("d", "e")}``."""
    pools: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, equals, members_text = part.partition("=")
        members = tuple(filter(None, (m.strip() for m in members_text.split(","))))
        name = name.strip()
        if not equals or not members:
            raise ValueError(f"{part!r} is not NAME=MEMBER,MEMBER,...")
        for agent in (name, *members):
            if not re.fullmatch(AGENT_NAME_PATTERN, agent):
                raise ValueError(f"{agent!r} is not a valid agent name")
        if name in members or name in pools:
            raise ValueError(f"pool {name!r} is defined twice or contains itself")
        pools[name] = members
    members_everywhere = {m for members in pools.values() for m in members}
    if members_everywhere & pools.keys():
        raise ValueError("a pool cannot be a member of another pool")
    return pools


class SettingsError(Exception):
    """A setting has a bad value; the message names it and fits on one line."""


class WorktreeMode(StrEnum):
    """Where runs work: the project root, or a git worktree per agent name or per ticket."""

    OFF = "off"
    PER_AGENT = "per-agent"
    PER_TICKET = "per-ticket"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True)

    PARALLEL_DAEMON: bool = False
    MAX_CONCURRENT_AGENTS: Annotated[int, Field(ge=1)] | Literal["auto"] = 999
    PROCESS_MONITOR_INTERVAL: float = Field(default=10.0, gt=0)
    AGENT_TIMEOUT: float = Field(default=1800.0, gt=0)
    AGENT_KILL_GRACE: float = Field(default=10.0, ge=0)
    AGENT_COMMAND: str = DEFAULT_AGENT_COMMAND
    MAX_TRIGGER_BYTES: int = Field(default=1024 * 1024, ge=64)
    TRIGGER_SETTLE_SECONDS: float = Field(default=2.0, ge=0)
    ALLOW_FOREIGN_TRIGGERS: bool = False
    LOG_MAX_BYTES: int = Field(default=100 * 1024 * 1024, ge=4096)
    LOG_RETENTION_DAYS: float = Field(default=7.0, gt=0)
    LOG_COMPRESS_AFTER_HOURS: float = Field(default=24.0, ge=0)
    DAEMON_LOG_MAX_BYTES: int = Field(default=10 * 1024 * 1024, ge=4096)
    MAX_RETRIES: int = Field(default=0, ge=0, le=100)
    RETRY_BACKOFF: float = Field(default=30.0, ge=0)
    RETRY_BACKOFF_MAX: float = Field(default=3600.0, ge=0)
    AGENT_POOLS: str = ""
    MIN_FREE_MEMORY_PERCENT: float = Field(default=10.0, ge=0, le=100)
    WORKTREE_MODE: WorktreeMode = WorktreeMode.OFF
    WORKTREE_BASE: str = "HEAD"

    @field_validator("WORKTREE_BASE")
    @classmethod
    def _base_is_one_revision(cls, value: str) -> str:
        """It becomes one git argument: never an option, never blank or split."""
        if not value or value.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise ValueError("must name one commit, like HEAD, main or v1.2 (no spaces, no "
                             "leading '-')")
        return value

    @field_validator("AGENT_POOLS")
    @classmethod
    def _pools_parse(cls, value: str) -> str:
        parse_pools(value)
        return value

    @property
    def pools(self) -> dict[str, tuple[str, ...]]:
        return parse_pools(self.AGENT_POOLS)

    def retry_delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``: RETRY_BACKOFF doubling, capped."""
        return min(self.RETRY_BACKOFF * 2 ** (attempt - 1), self.RETRY_BACKOFF_MAX)

    @field_validator("AGENT_COMMAND")
    @classmethod
    def _command_splits(cls, value: str) -> str:
        try:
            words = shlex.split(value)
        except ValueError as error:
            raise ValueError(f"cannot be split into words: {error}") from None
        if not words:
            raise ValueError("is empty")
        unknown = {name for word in words for name in _PLACEHOLDER.findall(word)}
        unknown -= set(PLACEHOLDERS)
        if unknown:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}} (known: {known})")
        return value

    @property
    def command_words(self) -> list[str]:
        return shlex.split(self.AGENT_COMMAND)

    @property
    def concurrency_limit(self) -> int:
        if not self.PARALLEL_DAEMON:
            return 1
        if self.MAX_CONCURRENT_AGENTS == "auto":
            return automatic_limit()
        return self.MAX_CONCURRENT_AGENTS

    @property
    def mode_text(self) -> str:
        if self.PARALLEL_DAEMON:
            automatic = " (auto)" if self.MAX_CONCURRENT_AGENTS == "auto" else ""
            return (f"Parallel execution enabled (up to {self.concurrency_limit}{automatic} "
                    "agents at once)")
        return "Sequential execution (one agent at a time, strict FIFO)"


def load_settings(paths: ProjectPaths) -> Settings:
    """Read settings; a bad value raises :class:`SettingsError` naming the setting."""
    try:
        return Settings(_env_file=paths.env_file if paths.env_file.is_file() else None)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        given = first.get("input")
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}={given!r}: {message}") from None


def dotenv_extras(paths: ProjectPaths) -> dict[str, str]:
    """Variables from ``.env`` that the real environment lacks; agents see them too."""
    if not paths.env_file.is_file():
        return {}
    values = dotenv_values(paths.env_file)
    return {k: v for k, v in values.items() if v is not None and k not in os.environ}
