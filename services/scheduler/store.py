"""Live bed state in Redis: the scheduler is its only writer; Kafka remains the source of truth.

Keys carry a hash tag per ward (`wardflow:{ward:W}:...`), so every script touches one slot and runs
unchanged on Redis Cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout
from services.scheduler import scripts
from services.scheduler.domain import allowed_from


@dataclass(frozen=True)
class Assignment:
    patient_id: str
    bed: str
    requested_at_epoch: float


@dataclass(frozen=True)
class BedChange:
    bed: str
    previous: BedStatus
    status: BedStatus


@dataclass(frozen=True)
class ChangeResult:
    """What a script did: `applied`, `already`, `waiting`, `withdrawn`, `no_bed`, `unknown_bed`,
    or `refused` (an illegal transition; nothing changed)."""

    outcome: str
    ward: str
    bed: str | None = None
    previous: BedStatus | None = None
    changes: tuple[BedChange, ...] = ()
    assigned: Assignment | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> ChangeResult:
        data: dict[str, Any] = json.loads(raw)
        changes = data.get("changes") or []  # cjson encodes an empty table as {}
        assigned = data.get("assigned")
        return cls(
            outcome=data["outcome"],
            ward=data["ward"],
            bed=data.get("bed"),
            previous=BedStatus(data["previous"]) if data.get("previous") else None,
            changes=tuple(BedChange(b, BedStatus(p), BedStatus(s)) for b, p, s in changes),
            assigned=Assignment(assigned["patient"], assigned["bed"], assigned["requested_at"])
            if assigned
            else None,
        )


class RedisBedStore:
    """Bed state per ward, changed only through atomic scripts."""

    def __init__(self, redis: Redis, prefix: str = "wardflow", seen_ttl_seconds: int = 604_800):
        self.redis = redis
        self.prefix = prefix
        self.seen_ttl_seconds = seen_ttl_seconds
        self.channel = f"{prefix}:beds:changes"
        self._allocate = redis.register_script(scripts.ALLOCATE)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._ensure = redis.register_script(scripts.ENSURE_BEDS)

    def _keys(self, ward: str, event_id: UUID | None = None, step: str = "") -> list[str]:
        """The ward's keys; the last is the seen key of one step of one cause event."""
        base = f"{self.prefix}:{{ward:{ward}}}"
        seen = f"{base}:seen:{event_id}:{step}" if event_id else f"{base}:seen:-"
        names = ("status", "occupant", "patient_bed", "available", "order", "waiting")
        return [f"{base}:{name}" for name in names] + [seen]

    async def ensure_layout(self, layout: HospitalLayout) -> None:
        """Create beds that do not exist yet as available; existing beds keep their state."""
        for ward in layout.wards:
            await self._ensure(keys=self._keys(ward.id), args=list(ward.beds))

    async def allocate(
        self, ward: str, patient_id: str, event_id: UUID, requested_at_epoch: float
    ) -> ChangeResult:
        """Give the patient the ward's first available bed, or queue them; atomic."""
        args: list[str | int | float] = [
            patient_id,
            self.seen_ttl_seconds,
            self.channel,
            requested_at_epoch,
            ward,
        ]
        raw = await self._allocate(keys=self._keys(ward, event_id), args=args)
        return ChangeResult.from_json(raw)

    async def transition(
        self,
        ward: str,
        event_id: UUID,
        target: BedStatus,
        *,
        bed: str | None = None,
        patient_id: str | None = None,
        step: str = "",
    ) -> ChangeResult:
        """Move a bed (or the patient's bed) to `target` if the lifecycle allows it; atomic.

        `step` tells apart several changes one event causes in the same ward (a transfer within
        a ward releases one bed and occupies another), each idempotent on its own.
        """
        allowed = ",".join(sorted(status.value for status in allowed_from(target)))
        args: list[str | int] = [
            bed or "",
            patient_id or "",
            target.value,
            allowed,
            self.seen_ttl_seconds,
            self.channel,
            ward,
        ]
        raw = await self._transition(keys=self._keys(ward, event_id, step), args=args)
        return ChangeResult.from_json(raw)

    async def statuses(self, ward: str) -> dict[str, BedStatus]:
        raw = await self.redis.hgetall(self._keys(ward)[0])
        return {_text(bed): BedStatus(_text(status)) for bed, status in raw.items()}

    async def waiting_count(self, ward: str) -> int:
        return int(await self.redis.zcard(self._keys(ward)[5]))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
