"""Simulator events as ingest's `POST /v1/events` takes them, and the clock that stamps them.

A payload is the contract's JSON for one event plus `kind`, `event_id` and `occurred_at`, without
`recorded_at` and `source` (ingest sets those from its clock and the caller's credential). Pure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

Payload = dict[str, Any]
"""One event as sent to ingest (JSON-ready)."""


def same_time(at: datetime) -> datetime:
    return at


@dataclass(frozen=True)
class CompressedClock:
    """Maps wall time to simulated time running `speedup` times faster from `start`, and back."""

    start: datetime
    speedup: float

    def simulated(self, wall: datetime) -> datetime:
        return self.start + (wall - self.start) * self.speedup

    def wall(self, simulated: datetime) -> datetime:
        return self.start + (simulated - self.start) / self.speedup


class EventFactory:
    """Builds payloads with reproducible uuid4 event ids drawn from `ids`.

    `stamp` turns the simulated time of an event into the `occurred_at` sent.
    """

    def __init__(
        self, ids: random.Random, stamp: Callable[[datetime], datetime] = same_time
    ) -> None:
        self.ids = ids
        self.stamp = stamp

    def event_id(self) -> str:
        return str(UUID(int=self.ids.getrandbits(128), version=4))

    def event(self, kind: str, at: datetime, **fields: Any) -> Payload:
        occurred_at = self.stamp(at).astimezone(UTC).isoformat()
        return {"kind": kind, "event_id": self.event_id(), "occurred_at": occurred_at, **fields}
