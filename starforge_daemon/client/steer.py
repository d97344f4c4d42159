"""Steering the daemon over its control socket: pause and resume (in ``paused.json`` when no
daemon runs), stop an agent's run, cancel a waiting trigger. ``starforge queue pause``,
``agent stop``, ``queue cancel`` and the dashboard all go through here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starforge_daemon.store.control_socket import ControlError, DaemonNotRunning, request
from starforge_daemon.store.paths import ProjectPaths
from starforge_daemon.store.pauses import Pauses, change_without_daemon, load_pauses


class Refused(ControlError):
    """The daemon answered, and said no; ``answer`` is what it said."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(str(answer.get("error") or "the daemon refused"))
        self.answer = answer


def ask(paths: ProjectPaths, message: dict[str, Any]) -> dict[str, Any]:
    """The running daemon's answer to ``message``; raises :class:`ControlError` when none
    answers, :class:`Refused` when it says no."""
    answer = request(paths.control_socket, message)
    if not answer.get("ok"):
        raise Refused(answer)
    return answer


def stop_agent(paths: ProjectPaths, agent: str) -> dict[str, Any]:
    """Stop ``agent``'s run (the answer names its ``run_id`` and ``trigger``)."""
    return ask(paths, {"op": "stop-agent", "agent": agent})


def cancel_trigger(paths: ProjectPaths, trigger: str) -> dict[str, Any]:
    """Archive a waiting trigger as cancelled (the answer says where: ``archived``)."""
    return ask(paths, {"op": "cancel", "trigger": trigger})


@dataclass(frozen=True)
class PauseChange:
    """The pauses before and after a pause or resume, and the answer (``daemon_running`` says
    whether the daemon made the change or the file was changed without one)."""

    before: Pauses
    after: Pauses
    answer: dict[str, Any]

    @property
    def daemon_running(self) -> bool:
        return bool(self.answer["daemon_running"])


def set_pause(paths: ProjectPaths, agent: str | None, paused: bool) -> PauseChange:
    """Pause (or resume) ``agent``, everyone when None: through the daemon when it runs, else
    in ``paused.json``, which it reads when it starts. Raises :class:`ControlError`."""
    before = load_pauses(paths.paused_file)
    try:
        answer = ask(paths, {"op": "pause" if paused else "resume", "agent": agent})
    except DaemonNotRunning:
        pass
    else:
        return PauseChange(before, Pauses.from_json(answer.get("paused")),
                           {**answer, "daemon_running": True})
    try:
        changed = change_without_daemon(paths, agent, paused)
    except OSError as error:
        raise ControlError(f"cannot change {paths.paused_file}: {error.strerror or error}") from None
    if changed is None:
        raise ControlError("the daemon is starting or stopping; try again")
    before, after = changed
    return PauseChange(before, after, {"ok": True, "paused": after.to_json(),
                                       "daemon_running": False})
