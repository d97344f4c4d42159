"""The queue's order rules, without any files or processes."""

from __future__ import annotations

from starforge_daemon.intake import QueuedTrigger
from starforge_daemon.queue import TriggerQueue


def entry(name: str, agent: str, stamp: int) -> QueuedTrigger:
    return QueuedTrigger(name, agent, (stamp, name))


def drain(queue: TriggerQueue) -> list[str]:
    taken = []
    while (item := queue.take_next()) is not None:
        taken.append(item.name)
        queue.release(item.agent)
    return taken


def test_oldest_first_ties_by_name() -> None:
    queue = TriggerQueue()
    for item in (entry("c", "x", 5), entry("b", "y", 5), entry("a", "z", 9), entry("d", "w", 1)):
        queue.add(item)
    assert drain(queue) == ["d", "b", "c", "a"]


def test_busy_agent_waits_and_others_go_ahead() -> None:
    queue = TriggerQueue()
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a2", "a", 2))
    queue.add(entry("b1", "b", 3))
    first = queue.take_next()
    assert first is not None and first.name == "a1"
    second = queue.take_next()
    assert second is not None and second.name == "b1"
    assert queue.take_next() is None, "a2 must wait for a1's agent"
    queue.release("a")
    third = queue.take_next()
    assert third is not None and third.name == "a2"


def test_late_older_trigger_goes_before_younger_of_same_agent() -> None:
    queue = TriggerQueue()
    queue.add(entry("young", "a", 10))
    queue.add(entry("old", "a", 1))
    assert drain(queue) == ["old", "young"]


def test_held_agent_from_an_adopted_run_blocks_only_itself() -> None:
    queue = TriggerQueue()
    queue.hold("a")
    queue.add(entry("a1", "a", 1))
    queue.add(entry("b1", "b", 2))
    assert drain(queue) == ["b1"]
    queue.release("a")
    assert drain(queue) == ["a1"]


def test_remove_and_duplicates() -> None:
    queue = TriggerQueue()
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a2", "a", 2))
    assert len(queue) == 2
    removed = queue.remove("a1")
    assert removed is not None and "a1" not in queue
    assert drain(queue) == ["a2"]
    assert queue.remove("nope") is None


def test_ten_thousand_triggers_keep_order_without_rescans() -> None:
    queue = TriggerQueue()
    for number in reversed(range(10_000)):
        queue.add(entry(f"t{number:05}", f"agent-{number % 16}", number))
    assert drain(queue) == [f"t{number:05}" for number in range(10_000)]
    assert [item.name for item in queue.in_order()] == []
