"""What a valid trigger is: the rules, checked by hand, shared by the daemon and its clients.

Checked by hand, not by a validation library: ``starforge trigger`` and ``submit_trigger`` use
these same rules on every handoff, where start-up time counts, and each reason says what is
allowed in words. Values are shown as JSON, the way the file holds them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from starforge_daemon.core.models import AGENT_NAME_RULE, TRIGGER_FIELDS, Trigger, is_agent_name

MAX_NESTING = 200  # far below Python's recursion limit, so the prompt's JSON can be written
PRIORITY_LIMIT = 1_000_000
MAX_RETRIES_LIMIT = 100
TIMEOUT_LIMIT = 7 * 86400  # seconds
MAX_UPSTREAMS = 1000
DEDUPE_KEY_LIMIT = 1024  # characters
UPSTREAM_POLICIES = ("fail", "skip", "run")
_TEXT_FIELDS = ("from_agent", "action", "message", "trace_id")


class InvalidTrigger(Exception):
    """The file can never become a valid trigger; the message is the reason put on disk."""


def _shown(value: Any) -> str:
    """A value as JSON, on one line and short."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isprintable():
        text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(name: str, rule: str, value: Any) -> InvalidTrigger:
    return InvalidTrigger(f"{name}: must be {rule} (got {_shown(value)})")


def _check_text(name: str, value: Any) -> None:
    """Trigger text ends up in argv and the environment, where a NUL cannot travel."""
    if not isinstance(value, str):
        raise _refuse(name, "a string", value)
    if "\x00" in value:
        raise InvalidTrigger(f"{name}: must not contain a NUL character")


def _check_ticket(name: str, value: Any) -> None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return
    if not isinstance(value, str):
        raise _refuse(name, "a string or a whole number", value)
    _check_text(name, value)


def _check_whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(name, f"a whole number from {low} to {high}", value)


def trigger_from_dict(document: Any) -> Trigger:
    """Check a decoded JSON document against the contract's rules, field by field in the
    contract's order; raises :class:`InvalidTrigger` with the first reason."""
    if not isinstance(document, dict):
        raise InvalidTrigger("not a JSON object")
    if "to_agent" not in document:
        raise InvalidTrigger("to_agent: required field is missing")
    if not is_agent_name(document["to_agent"]):
        raise _refuse("to_agent", AGENT_NAME_RULE, document["to_agent"])
    for name in _TEXT_FIELDS:
        if document.get(name) is not None:
            _check_text(name, document[name])
    _check_ticket("ticket", document.get("ticket"))
    context = document.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise _refuse("context", "a JSON object", context)
        _check_ticket("context.ticket", context.get("ticket"))
    _check_whole("priority", document.get("priority", 0), -PRIORITY_LIMIT, PRIORITY_LIMIT)
    if document.get("max_retries") is not None:
        _check_whole("max_retries", document["max_retries"], 0, MAX_RETRIES_LIMIT)
    timeout = document.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not 0 < timeout <= TIMEOUT_LIMIT):
        raise _refuse("timeout", f"a number of seconds above 0, at most {TIMEOUT_LIMIT}", timeout)
    _check_dependencies(document)
    known = {name: document[name] for name in TRIGGER_FIELDS if name in document}
    known["to_agent"] = sys.intern(known["to_agent"])  # a backlog names a few agents, often
    if "after" in known:
        known["after"] = tuple(dict.fromkeys(known["after"]))
    extra = {name: value for name, value in document.items() if name not in known}
    return Trigger(**known, extra=extra)


def _check_dependencies(document: dict[str, Any]) -> None:
    """``id``, ``after``, ``on_upstream_failure`` and ``dedupe_key``."""
    own = document.get("id")
    if own is not None and not is_agent_name(own):
        raise _refuse("id", AGENT_NAME_RULE, own)
    after = document.get("after", [])
    if not isinstance(after, list) or len(after) > MAX_UPSTREAMS:
        raise _refuse("after", f"a list of at most {MAX_UPSTREAMS} trigger ids", after)
    for upstream in after:
        if not is_agent_name(upstream):
            raise _refuse("after", f"a list of trigger ids ({AGENT_NAME_RULE})", upstream)
        if upstream == own:
            raise InvalidTrigger(f"after: a trigger cannot wait for itself ({own})")
    policy = document.get("on_upstream_failure", "fail")
    if policy not in UPSTREAM_POLICIES:
        raise _refuse("on_upstream_failure", "one of " + ", ".join(UPSTREAM_POLICIES), policy)
    key = document.get("dedupe_key")
    if key is not None:
        _check_text("dedupe_key", key)
        if not 0 < len(key) <= DEDUPE_KEY_LIMIT:
            raise _refuse("dedupe_key", f"1 to {DEDUPE_KEY_LIMIT} characters", key)


def _no_constant(name: str) -> Any:
    raise InvalidTrigger(f"not valid JSON: {name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # json.loads would make one per file


def _check_nesting_and_text(document: Any) -> None:
    """Refuse documents nested deeper than MAX_NESTING and strings holding half of a UTF-16
    surrogate pair (JSON's ``\\ud800``), which cannot be put in argv or a file name."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as error:
                    half = value[error.start].encode("unicode_escape").decode()
                    raise InvalidTrigger(f"not valid JSON: {half} is half of a character (an "
                                         "unpaired surrogate)") from None
        elif isinstance(value, dict | list):
            if depth > MAX_NESTING:
                raise InvalidTrigger(f"nested more than {MAX_NESTING} levels deep")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


def _decode_json(data: bytes) -> Any:
    """Strict JSON from UTF-8 bytes (no NaN or Infinity); raises :class:`InvalidTrigger`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidTrigger(f"not valid JSON: not UTF-8 text (byte {data[error.start]:#04x} at "
                             f"offset {error.start})") from None
    if text.startswith("\ufeff"):
        raise InvalidTrigger("not valid JSON: it starts with a byte order mark (save it as "
                             "UTF-8 without one)")
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidTrigger(f"not valid JSON: {error.msg} at line {error.lineno} column "
                             f"{error.colno}") from None
    except RecursionError:
        raise InvalidTrigger(f"nested more than {MAX_NESTING} levels deep") from None
    except ValueError:  # a number too long for Python's int
        raise InvalidTrigger("not valid JSON: a number has too many digits") from None
    _check_nesting_and_text(document)
    return document


def parse_trigger(data: bytes) -> Trigger:
    """Check raw bytes as a trigger; raises :class:`InvalidTrigger` with the reason."""
    if not data.strip():
        raise InvalidTrigger("empty file")
    return trigger_from_dict(_decode_json(data))
