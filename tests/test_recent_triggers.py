"""A trigger read at intake is not read again at its start while its file is the same one."""

from __future__ import annotations

import os
from pathlib import Path

from starforge_daemon.intake.recent import RecentTriggers, identity_of
from starforge_daemon.intake.triggers import Accepted, examine


def _accepted(path: Path) -> Accepted:
    verdict = examine(path, 0.0, max_bytes=4096, allow_foreign=False, settle_seconds=0.0)
    assert isinstance(verdict, Accepted)
    assert verdict.identity == identity_of(os.lstat(path))
    return verdict


def _kept(tmp_path: Path, body: bytes) -> tuple[RecentTriggers, Path]:
    path = tmp_path / "a.trigger"
    path.write_bytes(body)
    verdict = _accepted(path)
    recent = RecentTriggers()
    recent.keep(path.name, verdict.identity, verdict.trigger, 0.0)
    return recent, path


def test_a_claimed_file_that_is_still_the_one_read_is_not_read_again(tmp_path: Path) -> None:
    recent, path = _kept(tmp_path, b'{"to_agent": "a1", "message": "one"}')
    claimed = tmp_path / "running.trigger"
    path.rename(claimed)
    trigger = recent.take(path.name, claimed)
    assert trigger is not None and trigger.message == "one"
    assert recent.take(path.name, claimed) is None  # taken once


def test_a_file_rewritten_or_replaced_since_is_read_again(tmp_path: Path) -> None:
    recent, path = _kept(tmp_path, b'{"to_agent": "a1", "message": "one"}')
    stamp = os.stat(path).st_mtime_ns + 1_000_000
    path.write_bytes(b'{"to_agent": "a1", "message": "two"}')  # same size, in place
    os.utime(path, ns=(stamp, stamp))
    assert recent.take(path.name, path) is None

    recent, path = _kept(tmp_path, b'{"to_agent": "a1", "message": "one"}')
    other = tmp_path / "other"
    other.write_bytes(b'{"to_agent": "a1", "message": "one"}')
    os.utime(other, ns=(os.stat(path).st_mtime_ns,) * 2)
    other.replace(path)  # another file (inode) under the same name
    assert recent.take(path.name, path) is None


def test_a_link_or_a_missing_file_is_never_taken(tmp_path: Path) -> None:
    recent, path = _kept(tmp_path, b'{"to_agent": "a1"}')
    assert recent.take(path.name, tmp_path / "gone.trigger") is None
    recent, path = _kept(tmp_path, b'{"to_agent": "a1"}')
    link = tmp_path / "link.trigger"
    link.symlink_to(path)
    assert recent.take(path.name, link) is None


def test_when_full_the_first_kept_stay_unless_stale(tmp_path: Path) -> None:
    recent, path = _kept(tmp_path, b'{"to_agent": "a1"}')  # kept at 0
    verdict = _accepted(path)
    for number in range(1, RecentTriggers.SIZE + 1):
        recent.keep(f"{number}.trigger", verdict.identity, verdict.trigger, 1.0)
    assert recent.take(f"{RecentTriggers.SIZE}.trigger", path) is None, "full: not kept"
    recent.keep("late.trigger", verdict.identity, verdict.trigger,
                RecentTriggers.STALE_SECONDS + 0.5)  # in place of the stale first one
    assert recent.take(path.name, path) is None
    assert recent.take("late.trigger", path) is not None
    assert recent.take("1.trigger", path) is not None
