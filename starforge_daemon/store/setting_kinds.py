"""What a setting accepts: the kinds of values of the settings table (``store/settings.py``).

Each :class:`Kind` says in the user's words what is allowed and turns text into the value;
checking is done by hand, not by a settings library, so that ``starforge trigger`` stays light.
"""

from __future__ import annotations

import math
import re
import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starforge_daemon.core.command import PLACEHOLDERS, unknown_placeholders
from starforge_daemon.core.models import AGENT_NAME_RULE, is_agent_name
from starforge_daemon.core.notice_kinds import FINISH_PLACEHOLDERS, SELECTABLE, parse_kinds, split_urls


@dataclass(frozen=True, slots=True)
class Kind:
    """What one setting accepts: ``allowed`` in words (it follows "must be"), and ``parse``,
    which turns the text into the value or raises ValueError. A ValueError without a message
    means "must be <allowed>"; one with a message says more."""

    allowed: str
    parse: Callable[[str], Any]


_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word not in _TRUE and word not in _FALSE:
        raise ValueError
    return word in _TRUE


SWITCH = Kind("true or false (also yes/no, on/off, 1/0)", _switch)


def _range_words(noun: str, low: float, high: float | None, above: bool) -> str:
    if high is not None:
        return f"{noun} from {low:g} to {high:g}"
    return f"{noun} greater than {low:g}" if above else f"{noun} of at least {low:g}"


def whole_number(low: int, high: int | None = None, *, also: str | None = None) -> Kind:
    """An integer in [low, high]; ``also`` is one word accepted besides (``auto``)."""

    def parse(text: str) -> int | str:
        if also is not None and text.strip() == also:
            return also
        try:
            value = int(text)
        except ValueError:
            raise ValueError from None  # Python's words ("invalid literal...") are not the user's
        if value < low or (high is not None and value > high):
            raise ValueError
        return value

    allowed = _range_words("a whole number", low, high, above=False)
    return Kind(f"{allowed}, or {also}" if also else allowed, parse)


def number(low: float, high: float | None = None, *, above: bool = False) -> Kind:
    """A finite number in [low, high], or above ``low`` when ``above``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError from None
        if (not math.isfinite(value) or value < low or (above and value == low)
                or (high is not None and value > high)):
            raise ValueError
        return value

    return Kind(_range_words("a number", low, high, above), parse)


def choice(options: type[StrEnum]) -> Kind:
    words = [option.value for option in options]

    def parse(text: str) -> StrEnum:
        try:
            return options(text.strip())
        except ValueError:
            raise ValueError from None

    return Kind(", ".join(words[:-1]) + f" or {words[-1]}", parse)


def command_template(known: tuple[str, ...], *, optional: bool = False) -> Kind:
    """A command line split like a shell would, with only the ``known`` placeholders;
    ``optional``: empty means none."""
    names = ", ".join("{" + name + "}" for name in known)

    def parse(text: str) -> str:
        try:
            words = shlex.split(text)
        except ValueError as error:  # shlex says "No closing quotation" or "No escaped character"
            raise ValueError(f"cannot be split into words: {str(error).lower()}") from None
        if not words and not optional:
            raise ValueError("is empty: it must name the program to run")
        unknown = unknown_placeholders(words, known)
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; the known ones are {names}")
        return text

    return Kind(f"a command line with the placeholders {names}"
                + (", or empty for none" if optional else ""), parse)


AGENT_COMMAND = command_template(PLACEHOLDERS)
FINISH_COMMAND = command_template(FINISH_PLACEHOLDERS, optional=True)


def _notify_urls(text: str) -> str:
    split_urls(text)
    return text.strip()


def _notify_on(text: str) -> str:
    parse_kinds(text)
    return text.strip()


APPRISE_URLS = Kind("Apprise URLs (json://host/path, mailto://..., slack://...) separated by "
                   "spaces or commas, or empty for none", _notify_urls)
NOTIFY_KINDS = Kind("a comma list of " + ", ".join(SELECTABLE), _notify_on)


def parse_pools(text: str) -> dict[str, tuple[str, ...]]:
    """``pool=a,b,c; other=d,e`` -> ``{"pool": ("a", "b", "c"), "other": ("d", "e")}``."""
    pools: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, equals, members_text = part.partition("=")
        members = tuple(filter(None, (m.strip() for m in members_text.split(","))))
        name = name.strip()
        if not equals or not members:
            raise ValueError(f"{part!r} is not a pool: write NAME=MEMBER,MEMBER,... and "
                             "separate pools with ';'")
        for agent in (name, *members):
            if not is_agent_name(agent):
                raise ValueError(f"{agent!r} is not an agent name: names are {AGENT_NAME_RULE}")
        if name in members or name in pools:
            raise ValueError(f"pool {name!r} is defined twice or contains itself")
        pools[name] = members
    members_everywhere = {m for members in pools.values() for m in members}
    if members_everywhere & pools.keys():
        raise ValueError("a pool cannot be a member of another pool")
    return pools


def _pools(text: str) -> str:
    parse_pools(text)
    return text


POOLS = Kind("pools written NAME=MEMBER,MEMBER,... and separated by ';'", _pools)


def _revision(text: str) -> str:
    """It becomes one git argument: never an option, never blank or split."""
    if not text or text.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ValueError
    return text


REVISION = Kind("one commit, like HEAD, main or v1.2 (no spaces, no leading '-')", _revision)


def _signal_name(text: str) -> str:
    """A signal's name (``SIGINT``) from its name, short name or number; a run must be able
    to catch it, so never SIGKILL or SIGSTOP (SIGKILL comes after the grace anyway)."""
    word = text.strip().upper()
    if word.isdigit():
        try:
            name = signal.Signals(int(word)).name
        except ValueError:
            raise ValueError from None
    else:
        name = word if word.startswith("SIG") else f"SIG{word}"
    if name not in signal.Signals.__members__ or name in ("SIGKILL", "SIGSTOP"):
        raise ValueError
    return name


SIGNAL_NAME = Kind("a signal name like SIGINT, INT or SIGTERM (not SIGKILL or SIGSTOP), or its "
                   "number", _signal_name)

_SIZE = re.compile(r"(\d+)\s*([KMGT]?)i?B?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _byte_size(text: str) -> int | None:
    word = text.strip()
    if word.lower() in ("", "none", "max"):
        return None
    match = _SIZE.fullmatch(word)
    if match is None or int(match.group(1)) == 0:
        raise ValueError
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


BYTE_SIZE = Kind("a size in bytes like 2G, 512M or 1048576, or empty for no limit", _byte_size)


def _optional_count(text: str) -> int | None:
    word = text.strip()
    if word.lower() in ("", "none", "max"):
        return None
    if not word.isdigit() or int(word) == 0:
        raise ValueError
    return int(word)


OPTIONAL_COUNT = Kind("a whole number of at least 1, or empty for no limit", _optional_count)


def _optional_amount(text: str) -> float | None:
    word = text.strip()
    if word.lower() in ("", "none", "off"):
        return None
    value = NUMBER_ABOVE_ZERO.parse(word)
    assert isinstance(value, float)
    return value


NUMBER_ABOVE_ZERO = number(0, above=True)
OPTIONAL_AMOUNT = Kind("a number greater than 0, or empty for none", _optional_amount)


def _optional_word(text: str) -> str | None:
    """One argument of a command (a Slurm partition): never an option, never split."""
    word = text.strip()
    if not word:
        return None
    if word.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in word):
        raise ValueError
    return word


OPTIONAL_WORD = Kind("one word (no spaces, no leading '-'), or empty for none", _optional_word)


def _options(text: str) -> str:
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise ValueError(f"cannot be split into words: {str(error).lower()}") from None
    if any(not word.startswith("-") for word in words):
        raise ValueError
    return text.strip()


OPTIONS = Kind("options split into words like a shell would, each written --name=value "
               "(like --account=lab --mem=8G), or empty for none", _options)


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as its host and port; raises ValueError."""
    host, colon, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (not colon or not host or any(ch.isspace() for ch in host) or not port.isdigit()
            or not 0 < int(port) < 65536):
        raise ValueError
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1): only this machine reaches it.
    Other names are not resolved: they count as reachable from elsewhere."""
    import ipaddress  # 2 ms that only a daemon start with metrics pays

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen_address(text: str) -> str | None:
    if not text.strip():
        return None
    split_address(text)
    return text.strip()


LISTEN_ADDRESS = Kind("HOST:PORT like 127.0.0.1:9464 ([::1]:9464 for IPv6), or empty for none",
                      _listen_address)
