"""starforge-daemon: run many AI coding agents on one repository without them colliding."""

from .submit import submit_trigger

__all__ = ["submit_trigger"]
__version__ = "0.1.0"
