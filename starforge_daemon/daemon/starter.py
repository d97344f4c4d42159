"""Starting a run: claim its trigger into ``running/``, read it, prepare its workspace, render its
command and environment, and ask the runner to launch it. Also the gate in front of that
(``MIN_FREE_MEMORY_PERCENT``) and the archive of triggers rejected on the way."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import Enum, auto
from pathlib import Path
from typing import Any, Protocol

from starforge_daemon.core.command import (
    argv_problem,
    placeholder_values,
    render_argv,
    run_environment,
    uses_placeholder,
)
from starforge_daemon.core.events import Held, HoldLifted, Problem, Publisher, Rejected, Vanished
from starforge_daemon.core.holds import HoldKind, Holds
from starforge_daemon.core.ledger import Launching, Ledger
from starforge_daemon.core.models import OutcomeKind, QueuedTrigger, Run, RunExit, Trigger
from starforge_daemon.core.runids import TOKEN_BYTES, RunIds
from starforge_daemon.core.sessions import TicketSessions
from starforge_daemon.daemon.finisher import Finisher, files_refused
from starforge_daemon.daemon.handover import HandOver
from starforge_daemon.daemon.persistence import Persistence, Stores
from starforge_daemon.intake.recent import RecentTriggers
from starforge_daemon.intake.triggers import load_trigger
from starforge_daemon.intake.validate import InvalidTrigger
from starforge_daemon.runtime.api import LaunchSpec, Runner, RunnerError
from starforge_daemon.store.atomic import move_unique, write_new
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.results import NoRun
from starforge_daemon.store.settings import Settings
from starforge_daemon.workspaces.base import WorkspaceError, Workspaces

ARG_LIMIT = os.sysconf("SC_ARG_MAX")  # what the kernel lets argv and the environment take
VANISHED = "its file was taken out of the trigger folder before it ran"


class Start(Enum):
    """What came of a start: the agent's turn was used (a run, or a run that could not start
    and is recorded so), nothing was there to start (vanished, invalid), or the project's files
    refused the writes a start needs (the trigger waits in the queue, a hold begins)."""

    USED = auto()
    SKIPPED = auto()
    REFUSED = auto()


class Gauge(Protocol):
    """Why new runs must wait for now (memory is short), or None, and which kind of hold that
    is; ``daemon/load.py``, ``daemon/backend_gate.py``."""

    kind: HoldKind

    def shortage(self, now: float) -> str | None: ...


class Starter:
    def __init__(self, *, settings: Settings, paths: ProjectPaths, ledger: Ledger, runner: Runner,
                 stores: Stores, workspaces: Workspaces, gauge: Gauge, finisher: Finisher,
                 saved: Persistence, events: Publisher, base_env: Mapping[str, str],
                 holds: Holds, sessions: TicketSessions | None,
                 upstream_results: Callable[[tuple[str, ...]], list[dict[str, Any]]],
                 recent: RecentTriggers, handover: HandOver) -> None:
        self.settings = settings
        self.paths = paths
        self.ledger = ledger
        self.runner = runner
        self.stores = stores
        self.workspaces = workspaces
        self.gauge = gauge
        self.finisher = finisher
        self.saved = saved
        self.events = events
        self.base_env = base_env
        self.holds = holds
        self.sessions = sessions
        self.upstream_results = upstream_results  # for a trigger's hand-off file
        self.recent = recent  # triggers read at intake, not read again when still the same file
        self.handover = handover
        self.command = settings.command_words
        self.prompt_on_stdin = settings.prompt_on_stdin
        self.output = settings.output_kind
        self.writes_prompt = self.prompt_on_stdin or uses_placeholder(self.command, "prompt_file")
        self.takes_prompt = self.writes_prompt or uses_placeholder(self.command, "prompt")
        self.root = str(paths.root)  # every run's working directory but a worktree's
        self.run_ids = RunIds(lambda: secrets.token_hex(TOKEN_BYTES))
        self.held_back: str | None = None

    def holding_back(self, now: float, queued: int) -> bool:
        """No new run while memory is short, a rate limit holds or the day's budget is spent;
        said once per spell."""
        shortage = self.gauge.shortage(now)
        hold = None if shortage else self.holds.current(now)
        reason = shortage or (hold.reason if hold else None)
        if reason != self.held_back:
            self.held_back = reason
            self.saved.changed()
            kind = hold.kind if hold else self.gauge.kind
            self.events.publish(Held(reason, queued, str(kind)) if reason else HoldLifted())
        return reason is not None

    def reject(self, path: Path, name: str, reason: str, now: float,
               entry: QueuedTrigger) -> None:
        """Archive a queued trigger found unfit to run to ``processed/invalid/`` with the
        reason (one refused at intake: ``Admission.reject``)."""
        result = NoRun(name, OutcomeKind.INVALID, reason, entry.id)
        try:
            self.finisher.archivist.put(path, name, result.to_dict(), now)
        except FileNotFoundError:
            return
        except OSError as error:
            self.events.publish(Problem(msg="cannot archive invalid trigger", trigger=name,
                                        error=str(error)))
            return
        self.events.publish(Rejected(name, reason))

    def start(self, entry: QueuedTrigger, agent: str, now: float, behind: str | None = None,
              ) -> tuple[Start, QueuedTrigger]:
        """Start ``entry`` as ``agent``'s run (``behind``: handed over to start when that run
        ends); says what came of it, with the entry to queue again when the files refused
        (claimed into ``running/`` once the claim went through)."""
        try:
            claimed = self.paths.running / entry.name if entry.claimed \
                else move_unique(self.paths.triggers / entry.name, self.paths.running)
        except FileNotFoundError:  # on record, for whoever waits for it
            self.finisher.archivist.lost_file(NoRun(entry.name, OutcomeKind.LOST, VANISHED,
                                                    entry.id).to_dict())
            self.events.publish(Vanished(entry.name))
            return Start.SKIPPED, entry
        except OSError as error:
            return self._refused(error, now), entry
        try:
            trigger = self.recent.take(entry.name, claimed) or load_trigger(
                claimed, self.settings.MAX_TRIGGER_BYTES, self.settings.ALLOW_FOREIGN_TRIGGERS)
        except (InvalidTrigger, OSError) as error:
            self.reject(claimed, entry.name, str(error), now, entry)
            return Start.SKIPPED, entry
        run_id = self.run_ids.new(agent, now)
        log_path = self.paths.logs / f"{run_id}.log"
        earlier = self.stores.attempts.load(entry.name).attempts
        max_retries = self.settings.MAX_RETRIES if trigger.max_retries is None \
            else trigger.max_retries
        run = Run(run_id=run_id, agent=agent, trigger_name=entry.name,
                  trigger_path=str(claimed), log_path=str(log_path), started_at=now,
                  timeout=self._timeout(trigger), ticket=trigger.ticket_text,
                  action=trigger.action, from_agent=trigger.from_agent,
                  pool=trigger.to_agent if trigger.to_agent != agent else None,
                  attempt=len(earlier) + 1, max_retries=max_retries,
                  priority=trigger.priority, trigger_id=entry.id or None,
                  dedupe_key=trigger.dedupe_key, behind=behind, workdir=self.root)
        prompt_file = self.paths.prompt_file(run_id) if self.writes_prompt else None
        upstream_file = self.paths.upstream_file(run_id) if trigger.after else None
        values = placeholder_values(run, trigger, str(claimed), str(prompt_file or ""),
                                    str(upstream_file or ""), prompt=self.takes_prompt)
        argv = render_argv(self.command, values)
        if self.sessions is not None:
            argv = self.sessions.resuming(argv, run.ticket)
        environment = run_environment(self.base_env, values, self.root)
        too_big = argv_problem(argv, environment, ARG_LIMIT)
        if too_big:  # the kernel would refuse it: the trigger is what does not fit
            self.reject(claimed, entry.name, too_big, now, entry)
            return Start.SKIPPED, entry
        try:
            workspace = self.workspaces.prepare(run)
        except WorkspaceError as error:
            self.finisher.finish(Launching(run), RunExit(ended_at=now, error=str(error)), now)
            return Start.USED, entry
        if workspace.directory != run.workdir:
            run = replace(run, workdir=workspace.directory)
        side_files = tuple(path for path in (prompt_file, upstream_file) if path is not None)
        try:
            if prompt_file is not None:
                write_new(prompt_file, values["prompt"].encode(), mode=0o600)
            if upstream_file is not None:
                handoff = self.upstream_results(trigger.after)
                write_new(upstream_file, json.dumps(handoff, indent=1).encode() + b"\n",
                          mode=0o600)
            journal = self.stores.journal.create(run, side_files)
        except OSError as error:  # nothing started: the trigger waits, claimed, for the disk
            with contextlib.suppress(OSError):
                for side_file in side_files:
                    side_file.unlink(missing_ok=True)
            return self._refused(error, now), replace(entry, name=claimed.name, claimed=True)
        self.holds.disk_accepted()
        if behind is None:
            self.ledger.add(Launching(run))
        else:
            self.handover.put(run, entry)
        try:
            spec = LaunchSpec(run_id=run_id, argv=argv, env={**environment, **workspace.env},
                              cwd=workspace.directory, log_path=log_path,
                              log_cap=self.settings.LOG_MAX_BYTES, journal=journal,
                              stdin=prompt_file if self.prompt_on_stdin else None,
                              output=self.output, timeout=run.timeout, after=behind)
            self.runner.launch(spec)
        except (OSError, RunnerError) as error:
            self.handover.board(run_id, now)
            self.stores.journal.done(run_id)
            self.events.publish(Problem(msg="cannot start run", trigger=entry.name,
                                        error=str(error)))
            self.finisher.finish(Launching(run), RunExit(ended_at=now,
                                                         error=f"cannot start: {error}"), now)
        return Start.USED, entry

    def _timeout(self, trigger: Trigger) -> float:
        """The trigger's own timeout, within MAX_AGENT_TIMEOUT, else AGENT_TIMEOUT."""
        cap = self.settings.MAX_AGENT_TIMEOUT
        if trigger.timeout is None:
            return self.settings.AGENT_TIMEOUT
        return float(trigger.timeout if cap is None else min(trigger.timeout, cap))

    def _refused(self, error: OSError, now: float) -> Start:
        """A write a start needs failed: no new runs until the files take writes again."""
        files_refused(self.holds, self.events, error, now, "a trigger waits in the queue")
        return Start.REFUSED
