"""The project a command works on, for the commands that need one.

``starforge`` locates the project once (:func:`paths.locate`) and keeps the answer in the
context; a command that needs a project takes it with :func:`pass_project` and, outside one,
stops with one line and the exit status of LSB's "program is not configured".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from starforge_daemon.store.paths import Location, ProjectPaths

NOT_CONFIGURED_EXIT = 6  # LSB: program is not configured
STATUS_UNKNOWN_EXIT = 4  # LSB, for status: program or service status is unknown
LOCATION = "starforge.location"

Function = TypeVar("Function", bound=Callable[..., Any])


class NoProject(click.ClickException):
    """Outside a project: one line, with its own exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def location(ctx: click.Context) -> Location:
    return ctx.meta[LOCATION]


def require_project(ctx: click.Context, exit_code: int = NOT_CONFIGURED_EXIT) -> ProjectPaths:
    """The project's paths; raises :class:`NoProject` outside one."""
    place = location(ctx)
    if place.problem:
        raise NoProject(place.problem, exit_code)
    return place.paths


def pass_project(function: Function) -> Function:
    """Like ``click.pass_obj``, for a command that needs a project."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        return function(require_project(click.get_current_context()), *args, **kwargs)

    return command  # type: ignore[return-value]
