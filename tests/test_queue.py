"""The queue's order rules, without any files or processes."""

from __future__ import annotations

from starforge_daemon.core.models import QueuedTrigger
from starforge_daemon.core.queue import TriggerQueue


def entry(name: str, agent: str, stamp: int, priority: int = 0,
          not_before: float = 0.0) -> QueuedTrigger:
    return QueuedTrigger(name, agent, (-priority, stamp, name), not_before)


class Queue(TriggerQueue):
    """The queue with a busy set standing in for the daemon's ledger of runs in flight."""

    def __init__(self, pools: dict[str, tuple[str, ...]] | None = None) -> None:
        self.busy: set[str] = set()
        super().__init__(pools, self.busy.__contains__)

    def take_next(self, now: float) -> tuple[QueuedTrigger, str] | None:
        taken = super().take_next(now)
        if taken is not None:
            self.busy.add(taken[1])
        return taken

    def release(self, agent: str) -> None:
        self.busy.discard(agent)
        self.offer(agent)


def take(queue: Queue, now: float = 0.0) -> str | None:
    taken = queue.take_next(now)
    return None if taken is None else taken[0].name


def drain(queue: Queue, now: float = 0.0) -> list[str]:
    names = []
    while (taken := queue.take_next(now)) is not None:
        names.append(taken[0].name)
        queue.release(taken[1])
    return names


def test_oldest_first_ties_by_name() -> None:
    queue = Queue()
    for item in (entry("c", "x", 5), entry("b", "y", 5), entry("a", "z", 9), entry("d", "w", 1)):
        queue.add(item)
    assert drain(queue) == ["d", "b", "c", "a"]


def test_busy_agent_waits_and_others_go_ahead() -> None:
    queue = Queue()
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a2", "a", 2))
    queue.add(entry("b1", "b", 3))
    assert take(queue) == "a1"
    assert take(queue) == "b1"
    assert take(queue) is None, "a2 must wait for a1's agent"
    queue.release("a")
    assert take(queue) == "a2"


def test_late_older_trigger_goes_before_younger_of_same_agent() -> None:
    queue = Queue()
    queue.add(entry("young", "a", 10))
    queue.add(entry("old", "a", 1))
    assert drain(queue) == ["old", "young"]


def test_higher_priority_first_and_order_kept_within_a_priority() -> None:
    queue = Queue()
    queue.add(entry("old-normal", "a", 1))
    queue.add(entry("urgent-b", "b", 5, priority=10))
    queue.add(entry("urgent-a2", "a", 4, priority=10))
    queue.add(entry("urgent-a1", "a", 3, priority=10))
    queue.add(entry("low", "c", 0, priority=-1))
    assert drain(queue) == ["urgent-a1", "urgent-a2", "urgent-b", "old-normal", "low"]


def test_held_agent_from_an_adopted_run_blocks_only_itself() -> None:
    queue = Queue()
    queue.busy.add("a")
    queue.add(entry("a1", "a", 1))
    queue.add(entry("b1", "b", 2))
    assert drain(queue) == ["b1"]
    queue.release("a")
    assert drain(queue) == ["a1"]


def test_pool_spreads_round_robin_and_waits_when_all_members_are_busy() -> None:
    queue = Queue({"dev": ("dev-a", "dev-b")})
    for number in range(4):
        queue.add(entry(f"p{number}", "dev", number))
    queue.add(entry("direct-b", "dev-b", 10))
    first, second = queue.take_next(0), queue.take_next(0)
    assert first is not None and second is not None
    assert [first[1], second[1]] == ["dev-a", "dev-b"]
    assert queue.take_next(0) is None, "both members busy: the pool waits"
    queue.release("dev-a")
    third = queue.take_next(0)
    assert third is not None and third[1] == "dev-a" and third[0].name == "p2"
    queue.release("dev-b")
    fourth = queue.take_next(0)
    assert fourth is not None and fourth[0].name == "p3" and fourth[1] == "dev-b"
    queue.release("dev-b")
    fifth = queue.take_next(0)
    assert fifth is not None and fifth[0].name == "direct-b" and fifth[1] == "dev-b"


def test_pause_and_resume_an_agent_or_a_pool_member() -> None:
    queue = Queue({"dev": ("dev-a", "dev-b")})
    queue.pause("a")
    queue.pause("dev-a")
    queue.add(entry("a1", "a", 1))
    queue.add(entry("p1", "dev", 2))
    taken = queue.take_next(0)
    assert taken is not None and taken[0].name == "p1" and taken[1] == "dev-b"
    assert take(queue) is None
    queue.resume("a")
    assert take(queue) == "a1"


def test_backoff_holds_a_trigger_until_its_time() -> None:
    queue = Queue()
    queue.add(entry("retry", "a", 1, not_before=100.0))
    queue.add(entry("other", "b", 2))
    assert drain(queue, now=50.0) == ["other"]
    assert queue.next_due() == 100.0
    assert drain(queue, now=99.0) == []
    assert drain(queue, now=100.0) == ["retry"]


def test_remove_and_duplicates() -> None:
    queue = Queue()
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a1", "a", 1))
    queue.add(entry("a2", "a", 2))
    assert len(queue) == 2
    removed = queue.remove("a1")
    assert removed is not None and "a1" not in queue
    assert drain(queue) == ["a2"]
    assert queue.remove("nope") is None


def test_ten_thousand_triggers_keep_order_without_rescans() -> None:
    queue = Queue()
    for number in reversed(range(10_000)):
        queue.add(entry(f"t{number:05}", f"agent-{number % 16}", number))
    assert drain(queue) == [f"t{number:05}" for number in range(10_000)]
    assert len(queue) == 0
