"""Ingest's memory of delivered event ids and answers (`guards.TtlMemory`): by key, for a time,
bounded; a request's keys are remembered together."""

from __future__ import annotations

from services.ingest.guards import TtlMemory


def test_remembers_a_key_for_its_time_to_live_and_no_longer() -> None:
    memory: TtlMemory[str, int] = TtlMemory(ttl_seconds=10, capacity=100)
    memory.put("a", 1, now=0)
    assert memory.get("a", now=10) == 1
    assert memory.get("a", now=10.5) is None
    assert len(memory) == 0, "an expired key is forgotten"


def test_put_many_remembers_every_key_and_keeps_the_newest_within_capacity() -> None:
    memory: TtlMemory[str, bool] = TtlMemory(ttl_seconds=60, capacity=3)
    memory.put_many(["a", "b"], True, now=0)
    memory.put_many(["c", "d"], True, now=1)
    assert [memory.get(key, now=2) for key in "abcd"] == [None, True, True, True]


def test_put_many_expires_what_is_older_than_its_time_to_live() -> None:
    memory: TtlMemory[str, bool] = TtlMemory(ttl_seconds=5, capacity=100)
    memory.put_many(["a", "b"], True, now=0)
    memory.put_many(["c"], True, now=6)
    assert len(memory) == 1 and memory.get("c", now=6)


def test_a_key_put_again_is_remembered_from_then() -> None:
    memory: TtlMemory[str, int] = TtlMemory(ttl_seconds=5, capacity=2)
    memory.put_many(["a", "b"], 1, now=0)
    memory.put_many(["a"], 2, now=4)  # refreshed: now the newest
    memory.put_many(["c"], 3, now=4)  # over capacity: the oldest, b, goes
    assert [memory.get(key, now=8) for key in "abc"] == [2, None, 3]
