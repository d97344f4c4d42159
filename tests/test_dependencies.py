"""The pure rules of triggers that wait for others (core/dependencies.py) and of trigger ids."""

from __future__ import annotations

import pytest

from starforge_daemon.core.dependencies import Dependencies, Ended, Refuse, Release, Wait
from starforge_daemon.core.models import OutcomeKind, QueuedTrigger, assigned_id
from starforge_daemon.intake.validate import InvalidTrigger, parse_trigger

OK = Ended("succeeded", "exited with status 0")
FAILED = Ended("failed", "exited with status 3")


def entry(trigger_id: str, *after: str, policy: str = "fail", arrived: float = 100.0,
          agent: str = "a") -> QueuedTrigger:
    name = f"{trigger_id}.trigger"
    return QueuedTrigger(name, agent, (0, int(arrived * 1e9), name), id=trigger_id,
                         after=after, on_upstream_failure=policy)


def test_a_trigger_without_after_joins_the_queue_at_once_and_is_live() -> None:
    deps = Dependencies(wait_limit=60)
    first = entry("build")
    assert deps.arrive(first) == Release(first)
    assert deps.is_live("build")
    deps.ended("build", OK)
    assert not deps.is_live("build")


def test_a_chain_waits_for_each_link_in_turn() -> None:
    deps = Dependencies(wait_limit=60)
    deps.arrive(entry("implement"))
    test = entry("test", "implement")
    review = entry("review", "test")
    assert deps.arrive(test) == Wait(("implement",))
    assert deps.arrive(review) == Wait(("test",))
    assert "test.trigger" in deps and "review.trigger" in deps
    assert deps.ended("implement", OK) == [Release(test)]
    assert "review.trigger" in deps
    assert deps.ended("test", OK) == [Release(review)]
    assert len(deps) == 0


def test_fan_in_waits_for_every_upstream() -> None:
    deps = Dependencies(wait_limit=60)
    for name in ("t1", "t2", "t3"):
        deps.arrive(entry(name))
    merge = entry("merge", "t1", "t2", "t3")
    assert deps.arrive(merge) == Wait(("t1", "t2", "t3"))
    assert deps.ended("t2", OK) == []
    assert deps.ended("t1", OK) == []
    assert deps.waiting_for("merge.trigger") == ("t3",)
    assert deps.ended("t3", OK) == [Release(merge)]


@pytest.mark.parametrize(("policy", "decision"), [
    ("fail", Refuse(entry("merge", "t1", "t2"), OutcomeKind.FAILED,
                    "dependency t2 failed: exited with status 3")),
    ("skip", Refuse(entry("merge", "t1", "t2", policy="skip"), OutcomeKind.SKIPPED,
                    "dependency t2 failed: exited with status 3")),
    ("run", Release(entry("merge", "t1", "t2", policy="run"))),
])
def test_a_failed_upstream_decides_by_the_policy(policy: str, decision: object) -> None:
    deps = Dependencies(wait_limit=60)
    deps.arrive(entry("t1"))
    deps.arrive(entry("t2"))
    deps.arrive(entry("merge", "t1", "t2", policy=policy))
    assert deps.ended("t2", FAILED) == []
    assert deps.ended("t1", OK) == [decision]


def test_an_upstream_that_already_ended_decides_at_arrival() -> None:
    deps = Dependencies(wait_limit=60)
    deps.remember("old", FAILED)
    late = entry("late", "old")
    assert deps.arrive(late) == Refuse(late, OutcomeKind.FAILED,
                                       "dependency old failed: exited with status 3")
    deps.remember("good", OK)
    fine = entry("fine", "good")
    assert deps.arrive(fine) == Release(fine)


def test_a_retried_upstream_has_not_ended_until_it_is_archived() -> None:
    """A retry stays live (the daemon reports only the archive as the end), so a failed first
    attempt decides nothing."""
    deps = Dependencies(wait_limit=60)
    deps.arrive(entry("flaky"))
    after = entry("after", "flaky")
    deps.arrive(after)
    assert deps.is_live("flaky")  # its first attempt failed and it waits for another
    assert deps.ended("flaky", OK) == [Release(after)]


def test_an_unknown_upstream_is_awaited_until_the_limit_then_fails() -> None:
    deps = Dependencies(wait_limit=60)
    waiter = entry("waiter", "ghost", arrived=100.0)
    assert deps.unknown(waiter) == ["ghost"]
    assert deps.arrive(waiter) == Wait(("ghost",))
    assert deps.next_due() == pytest.approx(160.0)
    assert deps.expired(159.9) == []
    [refused] = deps.expired(160.0)
    assert refused.kind is OutcomeKind.FAILED
    assert refused.reason.startswith("dependency ghost never came")
    assert "waiter.trigger" not in deps


def test_an_unknown_upstream_that_comes_in_time_is_awaited_to_its_end() -> None:
    deps = Dependencies(wait_limit=60)
    waiter = entry("waiter", "late", arrived=100.0)
    deps.arrive(waiter)
    deps.arrive(entry("late", arrived=150.0))
    assert deps.expired(200.0) == []  # it came: no longer unknown
    assert deps.ended("late", OK) == [Release(waiter)]


def test_a_cycle_is_refused_as_invalid_when_it_closes() -> None:
    deps = Dependencies(wait_limit=60)
    assert isinstance(deps.arrive(entry("a", "c")), Wait)
    assert isinstance(deps.arrive(entry("b", "a")), Wait)
    closing = entry("c", "b")
    decision = deps.arrive(closing)
    assert decision == Refuse(closing, OutcomeKind.INVALID, "after: dependency cycle c -> b -> a -> c")
    # archiving it ends it: the rest of the cycle fails by its policy, one after the other
    [refused_a] = deps.ended("c", Ended("invalid", decision.reason))
    assert refused_a.entry.id == "a" and refused_a.reason.startswith("dependency c invalid")


def test_an_id_live_twice_is_awaited_until_both_end() -> None:
    deps = Dependencies(wait_limit=60)
    deps.arrive(entry("nightly"))
    deps.live("nightly")  # another one with the same id, running since a restart
    after = entry("after", "nightly")
    deps.arrive(after)
    assert deps.ended("nightly", OK) == []
    assert deps.ended("nightly", OK) == [Release(after)]


def test_a_withdrawn_waiter_is_no_longer_released() -> None:
    deps = Dependencies(wait_limit=60)
    deps.arrive(entry("up"))
    deps.arrive(entry("down", "up"))
    assert deps.withdraw("down.trigger") == entry("down", "up")
    assert deps.ended("up", OK) == []


def test_ids_are_the_writers_or_the_file_name() -> None:
    assert assigned_id("review-52.trigger") == "review-52"
    odd = assigned_id("a name with spaces.trigger")
    assert odd.startswith("t-") and odd == assigned_id("a name with spaces.trigger")
    assert parse_trigger(b'{"to_agent": "a", "id": "x1", "after": ["p", "q", "p"]}').after \
        == ("p", "q")


@pytest.mark.parametrize(("document", "reason"), [
    (b'{"to_agent": "a", "id": "-x"}', "id: must be 1 to 64"),
    (b'{"to_agent": "a", "after": "p"}', "after: must be a list"),
    (b'{"to_agent": "a", "after": ["ok", "no way"]}', "after: must be a list of trigger ids"),
    (b'{"to_agent": "a", "id": "me", "after": ["me"]}', "after: a trigger cannot wait for itself"),
    (b'{"to_agent": "a", "on_upstream_failure": "maybe"}', "on_upstream_failure: must be one of"),
    (b'{"to_agent": "a", "dedupe_key": ""}', "dedupe_key: must be 1 to 1024 characters"),
    (b'{"to_agent": "a", "dedupe_key": 5}', "dedupe_key: must be a string"),
])
def test_bad_dependency_fields_are_refused_with_a_reason(document: bytes, reason: str) -> None:
    with pytest.raises(InvalidTrigger, match=reason):
        parse_trigger(document)
