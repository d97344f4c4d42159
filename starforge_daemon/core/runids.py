"""Run ids, ``<agent>-<unix seconds>-<token>``, and the names of the run logs made of them.

The daemon names each run ``<agent>-<seconds>-<6 hex digits>`` and its log ``<run id>.log``
(``.log.gz`` once log upkeep has compressed it). The StarForge docs name run logs
``<agent>-<seconds>.log``, and an earlier install may have left such: they are read as run logs
too. The agent part is matched lazily, the seconds have at least 9 digits and the token exactly
six hex digits, so ``qa-1-1729845600.log`` is agent ``qa-1``,
``junior-dev-a-1729845600-123456.log`` is agent ``junior-dev-a``, and ``notes-2.log`` is no
run log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_BYTES = 3  # the token is their hex: six digits
RUN_LOG_SUFFIXES = (".log", ".log.gz")
_RUN_ID = re.compile(r"(?P<agent>[A-Za-z0-9][A-Za-z0-9._-]{0,63}?)-(?P<seconds>[0-9]{9,})"
                     r"(?:-[0-9a-f]{6})?")


def new_run_id(agent: str, seconds: float, token: str) -> str:
    """The id of a run of ``agent`` started at unix time ``seconds``; ``token``, six random hex
    digits (``secrets.token_hex(TOKEN_BYTES)``), tells apart runs started in the same second."""
    return f"{agent}-{int(seconds)}-{token}"


class RunIds:
    """Run ids that are never issued twice in one second. Six hex digits are 16.7 million
    tokens: at 800 runs a second over 16 agents, a repeat is expected about once in seven
    100,000-run backlogs (one such bench run counted 99,999 logs). Two runs of one id would
    share a log, a journal entry and the runner's records. ``draw`` gives a fresh token."""

    def __init__(self, draw: Callable[[], str]) -> None:
        self._draw = draw
        self._second = -1
        self._issued: set[str] = set()  # this second's

    def new(self, agent: str, seconds: float) -> str:
        second = int(seconds)
        if second != self._second:
            self._second, self._issued = second, set()
        while (run_id := new_run_id(agent, second, self._draw())) in self._issued:
            pass
        self._issued.add(run_id)
        return run_id


@dataclass(frozen=True, slots=True)
class RunId:
    text: str
    agent: str
    seconds: int  # unix time the run started


def parse_run_id(text: str) -> RunId | None:
    """A run id (or a seed log's stem) in parts; None for anything else."""
    match = _RUN_ID.fullmatch(text)
    return RunId(text, match["agent"], int(match["seconds"])) if match else None


def log_run_id(name: str) -> RunId | None:
    """The run id a run log's file name holds (``<run id>.log`` or ``.log.gz``); None for other
    files (``daemon.log``)."""
    for suffix in RUN_LOG_SUFFIXES:
        stem = name.removesuffix(suffix)
        if stem != name:
            return parse_run_id(stem)
    return None


def agent_of(name: str) -> str | None:
    """``junior-dev-a-1761368400-1a2b3c.log`` or ``junior-dev-a-1761368400.log.gz`` ->
    ``junior-dev-a``; None for other files."""
    run_id = log_run_id(name)
    return run_id.agent if run_id else None
