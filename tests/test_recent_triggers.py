"""A trigger read at intake is not read again at its start while its file is the same one."""

from __future__ import annotations

import os
from pathlib import Path

from starforge_daemon.intake.recent import RecentTriggers, identity_of
from starforge_daemon.intake.triggers import Accepted, examine


def _accepted(path: Path, max_bytes: int = 4096) -> Accepted:
    verdict = examine(path, 0.0, max_bytes=max_bytes, allow_foreign=False, settle_seconds=0.0)
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
    room = RecentTriggers.BUDGET_BYTES // (RecentTriggers.ENTRY_BYTES + verdict.identity[2])
    for number in range(1, room):
        recent.keep(f"{number}.trigger", verdict.identity, verdict.trigger, 1.0)
    recent.keep(f"{room}.trigger", verdict.identity, verdict.trigger, 1.0)
    assert recent.take(f"{room}.trigger", path) is None, "full: not kept"
    recent.keep("late.trigger", verdict.identity, verdict.trigger,
                RecentTriggers.STALE_SECONDS + 0.5)  # in place of the stale first one
    assert recent.take(path.name, path) is None
    assert recent.take("late.trigger", path) is not None
    assert recent.take("1.trigger", path) is not None
    assert recent.take(f"{room - 1}.trigger", path) is not None


def test_the_memory_kept_is_bounded_by_the_size_of_the_files(tmp_path: Path) -> None:
    """Big triggers take more of the room: three of a third of it each do not fit."""
    recent = RecentTriggers()
    message = "x" * (RecentTriggers.BUDGET_BYTES // 3)
    verdicts = []
    for number in range(3):
        path = tmp_path / f"{number}.trigger"
        path.write_text(f'{{"to_agent": "a1", "message": "{message}"}}')
        verdicts.append((path, _accepted(path, max_bytes=len(message) + 64)))
        recent.keep(path.name, verdicts[-1][1].identity, verdicts[-1][1].trigger, 1.0)
    assert [recent.take(path.name, path) is not None for path, _ in verdicts] \
        == [True, True, False]
    path, verdict = verdicts[2]
    recent.keep(path.name, verdict.identity, verdict.trigger, 1.0)  # room made by the takes
    assert recent.take(path.name, path) is not None
