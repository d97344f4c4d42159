"""starforge-daemon: run many AI coding agents on one repository without them colliding."""

from __future__ import annotations

from typing import Any

__all__ = ["submit_trigger"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``submit_trigger`` is loaded when first used: the CLI imports this package on every
    command and must not pay for the trigger machinery it may not need."""
    if name == "submit_trigger":
        from starforge_daemon.client.submit import submit_trigger

        return submit_trigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
