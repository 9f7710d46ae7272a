"""Per-source rate limits, idempotency memory and patient pseudonyms: pure, time passed in."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@lru_cache(maxsize=100_000)  # the same patients send again and again
def pseudonymise(mrn: str, key: bytes) -> str:
    """The patient key that travels downstream: a keyed HMAC-SHA256 of the MRN (128 bits shown).

    The same MRN always gives the same pseudonym under one key; without the key it cannot be
    reversed or recomputed from a list of MRNs.
    """
    digest = hmac.new(key, mrn.strip().encode(), hashlib.sha256).hexdigest()
    return "p" + digest[:32]


@dataclass
class TokenBucket:
    """`rate` events per second on average, up to `burst` at once."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, count: int, now: float) -> float:
        """Take `count` tokens; 0.0 if granted, else the seconds to wait before retrying."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if count > self.burst:
            return math.inf
        if self.tokens >= count:
            self.tokens -= count
            return 0.0
        return (count - self.tokens) / self.rate


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, source: str, rate: float, burst: float, count: int, now: float) -> float:
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = TokenBucket(rate, burst, burst, now)
        return bucket.take(count, now)


class TtlMemory(Generic[K, T]):
    """Remembers values by key for `ttl_seconds`, at most `capacity` of them (oldest go first)."""

    def __init__(self, ttl_seconds: float, capacity: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.capacity = capacity
        self._items: OrderedDict[K, tuple[float, T]] = OrderedDict()

    def get(self, key: K, now: float) -> T | None:
        found = self._items.get(key)
        if found is None:
            return None
        stored_at, value = found
        if now - stored_at > self.ttl_seconds:
            del self._items[key]
            return None
        return value

    def put(self, key: K, value: T, now: float) -> None:
        self.put_many((key,), value, now)

    def put_many(self, keys: Iterable[K], value: T, now: float) -> None:
        """`put` for each key (a request's events: trimmed and expired once, not per key)."""
        items = self._items
        for key in keys:
            items[key] = (now, value)
            items.move_to_end(key)
        while len(items) > self.capacity:
            items.popitem(last=False)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._items:
            key, (stored_at, _) = next(iter(self._items.items()))
            if now - stored_at <= self.ttl_seconds:
                return
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
