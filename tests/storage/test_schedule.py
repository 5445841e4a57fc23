"""The exclusive queue's in-memory schedule: one key at a time, in id order, retries wait."""

from __future__ import annotations

from storage.queue.schedule import Entry, Schedule


def entry(entry_id: int, key: str, available_at: float = 0.0) -> Entry:
    return Entry(entry_id, key, str(entry_id).encode(), available_at=available_at)


def test_one_entry_per_key_oldest_first() -> None:
    schedule = Schedule()
    for entry_id, key in [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "b")]:
        schedule.add(entry(entry_id, key))
    first = schedule.take(10, now=0.0)
    assert [(e.id, e.key) for e in first] == [(1, "a"), (2, "b"), (4, "c")]
    assert schedule.take(10, now=0.0) == [], "every key with work is busy"
    for e in first:
        schedule.finish(e)
    assert [(e.id, e.key) for e in schedule.take(10, now=0.0)] == [(3, "a"), (5, "b")]
    assert schedule.running == 2


def test_take_respects_the_limit_and_keeps_the_rest() -> None:
    schedule = Schedule()
    for n in range(5):
        schedule.add(entry(n + 1, f"k{n}"))
    assert [e.id for e in schedule.take(2, now=0.0)] == [1, 2]
    assert [e.id for e in schedule.take(10, now=0.0)] == [3, 4, 5]


def test_an_earlier_entry_loaded_late_still_runs_first() -> None:
    schedule = Schedule()
    schedule.add(entry(7, "a"))  # published while the table was being loaded
    schedule.add(entry(3, "a"))  # ... and the load brings the older one
    schedule.add(entry(7, "a"))  # the load also saw the newer one: known, ignored
    [head] = schedule.take(10, now=0.0)
    assert head.id == 3
    schedule.finish(head)
    [second] = schedule.take(10, now=0.0)
    assert second.id == 7
    schedule.finish(second)
    assert len(schedule) == 0 and schedule.take(10, now=0.0) == []


def test_a_postponed_entry_holds_back_only_its_key_until_due() -> None:
    schedule = Schedule()
    schedule.add(entry(1, "poison"))
    schedule.add(entry(2, "poison"))
    schedule.add(entry(3, "fine"))
    taken = schedule.take(10, now=100.0)
    poison = next(e for e in taken if e.key == "poison")
    schedule.postpone(poison, attempts=1, available_at=105.0)
    schedule.finish(next(e for e in taken if e.key == "fine"))
    assert schedule.take(10, now=101.0) == []
    assert schedule.next_due() == 105.0
    [retry] = schedule.take(10, now=105.0)
    assert (retry.id, retry.attempts) == (1, 1)
    schedule.finish(retry)
    assert [e.id for e in schedule.take(10, now=105.0)] == [2]


def test_entries_left_waiting_by_a_previous_run_wait_their_turn() -> None:
    schedule = Schedule()
    schedule.add(entry(1, "a", available_at=50.0))
    schedule.add(entry(2, "b"))
    assert [e.id for e in schedule.take(10, now=10.0)] == [2]
    assert [e.id for e in schedule.take(10, now=50.0)] == [1]
