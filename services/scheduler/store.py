"""Live bed state in Redis: the scheduler is its only writer; Kafka remains the source of truth.

Every script's keys share one hash tag, so it runs unchanged on Redis Cluster: a general ward's
keys carry `{ward:W}`, the critical-care queue of a level and every HDU/ICU ward of that level
carry `{level:L}` (the names: `keys.py`). The store takes each ward's level from the layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout, Ward
from services.common.redis_client import RedisClient
from services.scheduler import scripts
from services.scheduler.domain import allowed_from
from services.scheduler.keys import BedKeys


@dataclass(frozen=True)
class Assignment:
    """A patient given a bed by allocation. `origin` (`ward`, `emergency`, `transfer`, `manual`)
    says where they came from; None for the holder of a reserved bed moving in (their wait was
    measured at the reservation) and for results stored before origins were kept.

    `status` is what the bed became: `occupied` (the patient is in it), or `reserved` for a bed
    manager's request (`reservation`: the ward reservation record, held until the ADT that moves
    the patient in confirms it, or until it expires)."""

    patient_id: str
    bed: str
    requested_at_epoch: float
    origin: str | None = None
    band: str | None = None
    needs: tuple[str, ...] = ()
    status: str = "occupied"
    reservation: CareRequest | None = None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Assignment:
        return cls(
            data["patient"],
            data["bed"],
            data["requested_at"],
            data.get("origin"),
            data.get("band"),
            tuple(data.get("needs") or ()),
            data.get("status") or "occupied",
            CareRequest.from_data(data.get("reservation")),
        )


@dataclass(frozen=True)
class BedChange:
    bed: str
    previous: BedStatus
    status: BedStatus


@dataclass(frozen=True)
class CareRequest:
    """A bed request as the store keeps it: queued (`waiting`) or holding a bed (`reserved`).

    `kind` `critical_care`: a request for an HDU/ICU level (`level`); `band` and `aggregate`
    (NEWS2) set its priority (None on records from before priorities); `match`
    (`domain.critical_care_match`): the beds it fits, None: any bed of the level.
    `kind` `ward`: a bed manager's request for one ward, holding a bed of it (only reserved
    records exist: a waiting one is an entry of the ward's queue); `level` is empty (the ward's,
    from the layout), `from_ward` empty. `reserved_at_epoch`: when the bed was reserved (Redis's
    clock)."""

    request_id: UUID
    patient_id: str
    level: str
    requested_at_epoch: float
    from_ward: str
    state: str
    ward: str | None = None
    bed: str | None = None
    band: str | None = None
    aggregate: int | None = None
    match: dict[str, Any] | None = None
    kind: str = "critical_care"
    reserved_at_epoch: float | None = None
    ward_needs: tuple[str, ...] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple((self.match or {}).get("needs") or ()) or self.ward_needs

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> CareRequest | None:
        if not data:
            return None
        return cls(
            request_id=UUID(data["request"]),
            patient_id=data["patient"],
            level=data.get("level") or "",
            requested_at_epoch=float(data["requested_at"]),
            from_ward=data.get("from_ward") or "",
            state=data["state"],
            ward=data.get("ward"),
            bed=data.get("bed"),
            band=data.get("band"),
            aggregate=int(data["aggregate"]) if data.get("aggregate") is not None else None,
            match=data.get("match") or None,
            kind=data.get("kind") or "critical_care",
            reserved_at_epoch=(
                float(data["reserved_at"]) if data.get("reserved_at") is not None else None
            ),
            ward_needs=tuple(data.get("needs") or ()),  # cjson: an empty list is {}
        )


@dataclass(frozen=True)
class ChangeResult:
    """What a ward script did: `applied`, `already`, `waiting`, `withdrawn`, `no_bed`,
    `unknown_bed`, `unknown` (a cancelled request that waits in no ward), or `refused` (an illegal
    transition; nothing changed). `blocked_reason` is the code recorded for a bed that became
    blocked; `patient_id` the patient whose wait a cancellation withdrew. `waiting_reason`, for
    `waiting`: `no_bed_available`, or `no_matching_bed` (beds are free, none eligible). RESCORE's
    outcomes: `rescored` (a waiting patient's new acuity), `updated` (an occupant's), `absent`.

    For a reserved bed: `fulfilled` is the request whose patient got a bed in this ward (their
    reserved one or, `released`, a named one, which freed the reserved bed); `displaced` is a
    request whose reserved bed was taken by another change (queued again: a critical-care one by
    the scheduler; a ward reservation's patient by the script, in the ward's queue, and
    `requeued` is then why they still wait, None if a free bed served them).

    Ward reservations (bed managers' requests): `cancelled` is the one a cancellation released;
    `expired` those an expiry sweep released. `served` lists the further beds given by the
    script (beyond `assigned`): to the queue, from released reservations or for a displaced
    patient queued again."""

    outcome: str
    ward: str
    bed: str | None = None
    previous: BedStatus | None = None
    changes: tuple[BedChange, ...] = ()
    assigned: Assignment | None = None
    fulfilled: CareRequest | None = None
    displaced: CareRequest | None = None
    released: CareRequest | None = None
    blocked_reason: str | None = None
    patient_id: str | None = None
    waiting_reason: str | None = None
    cancelled: CareRequest | None = None
    expired: tuple[CareRequest, ...] = ()
    served: tuple[Assignment, ...] = ()
    requeued: str | None = None

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
            assigned=Assignment.from_data(assigned) if assigned else None,
            fulfilled=CareRequest.from_data(data.get("fulfilled")),
            displaced=CareRequest.from_data(data.get("displaced")),
            released=CareRequest.from_data(data.get("released")),
            blocked_reason=data.get("blocked_reason"),
            patient_id=data.get("patient"),
            waiting_reason=data.get("reason"),
            cancelled=CareRequest.from_data(data.get("cancelled")),
            expired=tuple(
                r for r in (CareRequest.from_data(e) for e in data.get("expired") or []) if r
            ),
            served=tuple(Assignment.from_data(a) for a in data.get("served") or []),
            requeued=data.get("requeued"),
        )


@dataclass(frozen=True)
class BedRemoval:
    """What `REMOVE_BEDS` did: the beds removed, and those kept (not available or blocked) with
    their status."""

    removed: tuple[str, ...]
    kept: dict[str, BedStatus]

    @classmethod
    def from_json(cls, raw: str | bytes) -> BedRemoval:
        data: dict[str, Any] = json.loads(raw)
        kept = data.get("kept") or []  # cjson encodes an empty table as {}
        return cls(tuple(data.get("removed") or ()), {b: BedStatus(s) for b, s in kept})


@dataclass(frozen=True)
class WardBedChange:
    ward: str
    bed: str
    previous: BedStatus
    status: BedStatus


@dataclass(frozen=True)
class WardAssignment:
    ward: str
    assignment: Assignment


@dataclass(frozen=True)
class LevelResult:
    """What a critical-care script did for one level of care.

    `outcome`: for a request, `reserved`, `waiting`, `already` (the patient already had a live
    request of this level: `replaced` names the older id it took over) or `unknown` (a re-queue of
    a request withdrawn meanwhile); `served` when only the queue was served; for a withdrawal,
    `withdrawn`, `closed` (the request was already settled) or `unknown`. `request` is the
    request's record afterwards (for a withdrawal, as it was); `reserved` lists every reservation
    made, the request's own and older queued ones. For an expiry sweep, `expired`, with the
    released reservations in `expired`."""

    outcome: str
    level: str
    request: CareRequest | None = None
    replaced: UUID | None = None
    changes: tuple[WardBedChange, ...] = ()
    reserved: tuple[CareRequest, ...] = ()
    assigned: tuple[WardAssignment, ...] = ()
    expired: tuple[CareRequest, ...] = ()
    waiting_reason: str = "no_bed_available"

    @property
    def wards_changed(self) -> tuple[str, ...]:
        return tuple(sorted({change.ward for change in self.changes}))

    @classmethod
    def from_json(cls, raw: str | bytes) -> LevelResult:
        data: dict[str, Any] = json.loads(raw)
        reserved = [CareRequest.from_data(r) for r in data.get("reserved") or []]
        expired = [CareRequest.from_data(r) for r in data.get("expired") or []]
        return cls(
            outcome=data["outcome"],
            level=data["level"],
            request=CareRequest.from_data(data.get("request")),
            replaced=UUID(data["replaced"]) if data.get("replaced") else None,
            changes=tuple(
                WardBedChange(w, b, BedStatus(p), BedStatus(s))
                for w, b, p, s in data.get("changes") or []
            ),
            reserved=tuple(r for r in reserved if r is not None),
            expired=tuple(r for r in expired if r is not None),
            waiting_reason=data.get("reason") or "no_bed_available",
            assigned=tuple(
                WardAssignment(a["ward"], Assignment.from_data(a))
                for a in data.get("assigned") or []
            ),
        )


WARD_STRUCTURES: tuple[tuple[str, str], ...] = (
    ("status", "hash"),
    ("occupant", "hash"),
    ("patient_bed", "hash"),
    ("available", "zset"),
    ("order", "hash"),
    ("waiting", "zset"),
    ("reservation", "hash"),
    ("patient_reserved", "hash"),
    ("waiting_origin", "hash"),
    ("blocked_reason", "hash"),
    ("waiting_request", "hash"),
    ("waiting_eligible", "hash"),
    ("profile", "hash"),
)
assert len(WARD_STRUCTURES) == scripts.WARD_KEY_COUNT, "the scripts' ward_at() must match"
LEVEL_STRUCTURES: tuple[tuple[str, str], ...] = (
    ("queue", "zset"),
    ("requests", "hash"),
    ("patient_request", "hash"),
)


@dataclass(frozen=True)
class Snapshot:
    """A scope's structures at one Redis instant: name -> {field: value} or [(member, score)]."""

    scope: str
    taken_at_us: int
    hashes: dict[str, dict[str, str]]
    sorted_sets: dict[str, list[tuple[str, str]]]


class RedisBedStore:
    """Bed state per ward, changed only through atomic scripts.

    Every call records the scopes it may have changed (`ward:<W>`, `level:<L>`); the scheduler
    takes them with `take_touched()` and publishes a snapshot of each to beds.state.

    Key names depend on each ward's level of care (`keys.py`): give the hospital `layout` here,
    or call `ensure_layout` before any other call.
    """

    def __init__(
        self,
        redis: RedisClient,
        prefix: str = "wardflow",
        seen_ttl_seconds: int = 604_800,
        *,
        layout: HospitalLayout | None = None,
    ):
        self.redis = redis
        self.prefix = prefix
        self.keys = BedKeys.of(prefix, layout)
        self.seen_ttl_seconds = seen_ttl_seconds
        self.channel = f"{prefix}:beds:changes"
        self._allocate = redis.register_script(scripts.ALLOCATE)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._ensure = redis.register_script(scripts.ENSURE_BEDS)
        self._reserve = redis.register_script(scripts.RESERVE)
        self._withdraw = redis.register_script(scripts.WITHDRAW)
        self._expire = redis.register_script(scripts.EXPIRE)
        self._expire_ward = redis.register_script(scripts.EXPIRE_WARD)
        self._snapshot = redis.register_script(scripts.SNAPSHOT)
        self._counts = redis.register_script(scripts.COUNTS)
        self._restore = redis.register_script(scripts.RESTORE)
        self._cancel_wait = redis.register_script(scripts.CANCEL_WAIT)
        self._rescore = redis.register_script(scripts.RESCORE)
        self._set_eligible = redis.register_script(scripts.SET_ELIGIBLE)
        self._remove_beds = redis.register_script(scripts.REMOVE_BEDS)
        self._touched: set[str] = set()
        self._new_bed_placements: list[tuple[str, Assignment]] = []

    def take_touched(self) -> list[str]:
        """The scopes changed (or possibly changed) since the last call, sorted."""
        touched, self._touched = sorted(self._touched), set()
        return touched

    def _noted(self, result: ChangeResult) -> ChangeResult:
        if result.outcome not in ("refused", "unknown_bed", "already", "unknown"):
            self._touched.add(f"ward:{result.ward}")
        return result

    def _structures(self, scope: str) -> tuple[tuple[str, str, str], ...]:
        """(name, type, key) of every structure of a scope (`ward:<W>` or `level:<L>`)."""
        structures = WARD_STRUCTURES if scope.startswith("ward:") else LEVEL_STRUCTURES
        return tuple((part, shape, self.keys.scope(scope, part)) for part, shape in structures)

    async def snapshot(self, scope: str) -> Snapshot:
        """The scope's structures read in one atomic script, stamped with Redis's clock."""
        structures = self._structures(scope)
        raw = await self._snapshot(
            keys=[key for _, _, key in structures], args=[shape for _, shape, _ in structures]
        )
        data: dict[str, Any] = json.loads(raw)
        seconds, micros = (int(part) for part in data["time"])
        hashes: dict[str, dict[str, str]] = {}
        sorted_sets: dict[str, list[tuple[str, str]]] = {}
        for (name, shape, _), flat in zip(structures, data["data"], strict=True):
            flat = flat or []  # cjson encodes an empty table as {}
            pairs = list(zip(flat[::2], flat[1::2], strict=True))
            if shape == "hash":
                hashes[name] = dict(pairs)
            else:
                sorted_sets[name] = pairs
        return Snapshot(scope, seconds * 1_000_000 + micros, hashes, sorted_sets)

    async def restore(self, snapshot: Snapshot) -> None:
        """Replace the scope's structures with the snapshot's, atomically."""
        structures = self._structures(snapshot.scope)
        payload = []
        for name, shape, _ in structures:
            if shape == "hash":
                entries = [x for pair in snapshot.hashes.get(name, {}).items() for x in pair]
            else:
                entries = [x for pair in snapshot.sorted_sets.get(name, []) for x in pair]
            payload.append({"type": shape, "entries": entries})
        await self._restore(keys=[key for _, _, key in structures], args=[json.dumps(payload)])

    def scopes(self, layout: HospitalLayout, levels: Sequence[str]) -> list[str]:
        """Every scope of a layout: its wards and the critical-care levels."""
        return sorted([f"ward:{w.id}" for w in layout.wards] + [f"level:{lv}" for lv in levels])

    def _ward_keys(self, ward: str) -> list[str]:
        return [self.keys.ward(ward, name) for name, _ in WARD_STRUCTURES]

    def _keys(self, ward: str, event_id: UUID | None = None, step: str = "") -> list[str]:
        """The ward's keys; the last is the seen key of one step of one cause event."""
        return [*self._ward_keys(ward), self.keys.ward_seen(ward, event_id, step)]

    def _level_keys(self, level: str, wards: Sequence[str], event_id: UUID, step: str) -> list[str]:
        """The level's queue keys, the seen key, then every ward's keys (in `wards` order); all
        with the level's hash tag, so every ward must be of that level in the store's layout."""
        strays = [ward for ward in wards if self.keys.level_of(ward) != level]
        if strays:
            raise ValueError(
                f"wards {strays} are not {level} wards of the store's layout: give RedisBedStore "
                "the hospital layout (or call ensure_layout) before a critical-care script"
            )
        keys = [self.keys.level(level, name) for name, _ in LEVEL_STRUCTURES]
        keys.append(self.keys.level_seen(level, event_id, step))
        for ward in wards:
            keys.extend(self._ward_keys(ward))
        return keys

    async def ensure_layout(self, layout: HospitalLayout) -> None:
        """Create beds that do not exist yet as available; existing beds keep their state. The
        store's key names follow this layout from now on (each ward's level of care)."""
        self.keys = BedKeys.of(self.prefix, layout)
        for ward in layout.wards:
            await self.ensure_ward(ward)

    async def use_layout(self, layout: HospitalLayout) -> list[str]:
        """Key names follow `layout` from now on. A ward whose hash tag changes with it (its
        level of care moved to or from hdu/icu) has its state moved to the new names: read under
        the old names in one script, written under the new in one script, the old keys deleted.
        Only a ward whose old keys hold state and whose new ones are empty is moved (another
        replica may have moved it already). Returns the wards moved."""
        old, new = self.keys, BedKeys.of(self.prefix, layout)
        moved = []
        for ward in layout.wards:
            if old.ward(ward.id, "status") == new.ward(ward.id, "status"):
                continue
            self.keys = old
            old_keys = self._ward_keys(ward.id)
            held = await self.snapshot(f"ward:{ward.id}")
            self.keys = new
            if held.hashes.get("status") and not await self.redis.exists(
                new.ward(ward.id, "status")
            ):
                await self.restore(held)
                await self.redis.delete(*old_keys)
                self._touched.add(f"ward:{ward.id}")
                moved.append(ward.id)
        self.keys = new
        return moved

    async def ensure_ward(self, ward: Ward) -> tuple[Assignment, ...]:
        """As `ensure_layout`, for one ward. A new bed serves the ward's waiting patients first:
        returns the patients it placed (also kept for `take_new_bed_placements`)."""
        raw = await self._ensure(keys=self._keys(ward.id), args=[ward.id, self.channel, *ward.beds])
        data = json.loads(raw)
        placed = tuple(Assignment.from_data(a) for a in data.get("assigned") or [])
        if placed:
            self._touched.add(f"ward:{ward.id}")
            self._new_bed_placements.extend((ward.id, a) for a in placed)
        return placed

    async def waiting_profiles(self, ward: str) -> dict[str, dict[str, Any]]:
        """Every patient waiting for the ward, with their profile ({} when none is kept)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrange(self.keys.ward(ward, "waiting"), 0, -1)
            pipe.hgetall(self.keys.ward(ward, "profile"))
            waiting, profiles = await pipe.execute()
        return {_text(p): json.loads(profiles[p]) if p in profiles else {} for p in waiting}

    async def set_eligible(self, ward: str, eligible: dict[str, tuple[str, ...] | None]) -> None:
        """Re-evaluated beds each waiting patient may be given (None: any bed of the ward), for
        patients still waiting (checked in the same transaction's script)."""
        for patient, beds in eligible.items():
            await self._set_eligible(
                keys=[self.keys.ward(ward, "waiting"), self.keys.ward(ward, "waiting_eligible")],
                args=[patient, "" if beds is None else "1", ",".join(beds or ())],
            )

    def take_new_bed_placements(self) -> list[tuple[str, Assignment]]:
        """(ward, placement) of every waiting patient a new bed took since the last call."""
        placements, self._new_bed_placements = self._new_bed_placements, []
        return placements

    async def remove_beds(self, ward: str, beds: Sequence[str]) -> BedRemoval:
        """Take beds out of the ward, each only if it is available or blocked; atomic."""
        raw = await self._remove_beds(keys=self._ward_keys(ward), args=[self.channel, ward, *beds])
        return BedRemoval.from_json(raw)

    async def allocate(
        self,
        ward: str,
        patient_id: str,
        event_id: UUID,
        requested_at_epoch: float,
        origin: str = "ward",
        request_id: UUID | None = None,
        eligible: Sequence[str] | None = None,
        score: float | None = None,
        profile: str = "{}",
    ) -> ChangeResult:
        """Give the patient the ward's first available bed, or queue them (FIFO, remembering
        `origin` for the bed wait metric, and `request_id`, a bed manager's request, so that it
        can be cancelled); atomic. `eligible` (`domain.allocation_restriction`) restricts the
        patient to those beds (the lowest available one; waiting, to the first of them freed);
        None: any bed of the ward. A waiting patient is queued by `score` (`domain.queue_score`;
        default the request time: first come first served); `profile` (JSON,
        `domain.patient_profile`) is kept while they wait for or hold a bed of the ward."""
        args: list[str | int | float] = [
            patient_id,
            self.seen_ttl_seconds,
            self.channel,
            requested_at_epoch,
            ward,
            origin,
            str(request_id) if request_id else "",
            repr(requested_at_epoch if score is None else score),
            profile,
            "" if eligible is None else "1",
            *(eligible or ()),
        ]
        raw = await self._allocate(keys=self._keys(ward, event_id), args=args)
        return self._noted(ChangeResult.from_json(raw))

    async def transition(
        self,
        ward: str,
        event_id: UUID,
        target: BedStatus,
        *,
        bed: str | None = None,
        patient_id: str | None = None,
        step: str = "",
        blocked_reason: str = "unspecified",
        profile: str = "",
    ) -> ChangeResult:
        """Move a bed (or the patient's bed) to `target` if the lifecycle allows it; atomic.

        `step` tells apart several changes one event causes in the same ward (a transfer within
        a ward releases one bed and occupies another), each idempotent on its own.
        `blocked_reason` is the code recorded while the bed is blocked (for target blocked);
        `profile` (JSON) is kept for a patient placed (target occupied).
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
            blocked_reason,
            profile,
        ]
        raw = await self._transition(keys=self._keys(ward, event_id, step), args=args)
        return self._noted(ChangeResult.from_json(raw))

    async def cancel_wait(self, ward: str, request_id: UUID, event_id: UUID) -> ChangeResult:
        """Withdraw the patient a bed manager's request `request_id` queued for this ward, or
        release the bed reserved for it (`cancelled`; the bed serves the ward's queue first); the
        outcome is `withdrawn` (`patient_id` set) or `unknown`; atomic."""
        args: list[str | int] = [str(request_id), self.seen_ttl_seconds, self.channel, ward]
        raw = await self._cancel_wait(keys=self._keys(ward, event_id, "cancel"), args=args)
        return self._noted(ChangeResult.from_json(raw))

    async def rescore(
        self, ward: str, patient_id: str, profile: str, score: float, event_id: UUID
    ) -> ChangeResult:
        """A newer assessment: the patient's profile in this ward becomes `profile` and, if they
        wait for a bed of the ward, their queue score `score`; atomic. Outcome `rescored`,
        `updated` or `absent` (the patient neither waits nor lies here: nothing changed)."""
        args: list[str | int | float] = [
            patient_id,
            profile,
            repr(score),
            self.seen_ttl_seconds,
            self.channel,
            ward,
        ]
        raw = await self._rescore(keys=self._keys(ward, event_id, "rescore"), args=args)
        result = ChangeResult.from_json(raw)
        if result.outcome in ("rescored", "updated"):
            self._touched.add(f"ward:{ward}")
        return result

    async def profile(self, ward: str, patient_id: str) -> dict[str, Any] | None:
        """What the ward's live state knows of a patient waiting for or in one of its beds."""
        raw = await self.redis.hget(self.keys.ward(ward, "profile"), patient_id)
        return json.loads(raw) if raw else None

    async def blocked_reasons(self, ward: str) -> dict[str, str]:
        """Blocked bed -> its recorded reason code."""
        raw = await self.redis.hgetall(self._ward_keys(ward)[9])
        return {_text(bed): _text(reason) for bed, reason in raw.items()}

    async def reserve(
        self,
        level: str,
        wards: Sequence[str],
        event_id: UUID,
        *,
        step: str,
        request: CareRequest | None = None,
        score: float | None = None,
        requeue: bool = False,
        close: UUID | None = None,
    ) -> LevelResult:
        """Queue a critical-care request (or, `requeue`, queue again one whose bed was taken),
        forget the settled request `close`, then serve the level's queue; atomic.

        The queue is served lowest `score` first (`domain.queue_score`: request time minus the
        acuity credit; default the request time, FIFO); the record keeps the real request time,
        band and aggregate. `wards` are the ids of every ward of the level, sorted: a request
        gets the lowest free bed of the ward with the most free beds (ties: the first id)."""
        args: list[str | int | float] = [self.seen_ttl_seconds, self.channel, level]
        if request is None:
            args += ["", "", "", "", "", str(close) if close else "", "", "", "", ""]
        else:
            position = request.requested_at_epoch if score is None else score
            args += [
                str(request.request_id),
                request.patient_id,
                repr(request.requested_at_epoch),
                request.from_ward,
                "1" if requeue else "",
                str(close) if close else "",
                repr(position),
                request.band or "",
                "" if request.aggregate is None else request.aggregate,
                json.dumps(request.match, sort_keys=True) if request.match else "",
            ]
        args += wards
        self._touched.update([f"level:{level}", *(f"ward:{w}" for w in wards)])
        raw = await self._reserve(keys=self._level_keys(level, wards, event_id, step), args=args)
        return LevelResult.from_json(raw)

    async def withdraw(
        self, level: str, wards: Sequence[str], request_id: UUID, event_id: UUID
    ) -> LevelResult:
        """Drop a critical-care request: off the queue, or its reserved bed back to available
        (served again: a patient waiting for that ward, else the level's queue); atomic."""
        args: list[str | int] = [self.seen_ttl_seconds, self.channel, level, str(request_id)]
        keys = self._level_keys(level, wards, event_id, "withdraw")
        raw = await self._withdraw(keys=keys, args=[*args, *wards])
        result = LevelResult.from_json(raw)
        if result.outcome == "withdrawn":
            self._touched.update([f"level:{level}", *(f"ward:{w}" for w in wards)])
        return result

    async def expire_reservations(
        self, level: str, wards: Sequence[str], hold_seconds: float, sweep: UUID
    ) -> LevelResult:
        """Release the level's reservations held longer than `hold_seconds` (Redis's clock) and
        serve the queue with the freed beds; atomic. `sweep` names this sweep (its seen key)."""
        keys = self._level_keys(level, wards, sweep, "expire")
        args: list[str | int | float] = [60, self.channel, level, hold_seconds, *wards]
        result = LevelResult.from_json(await self._expire(keys=keys, args=args))
        if result.expired:
            self._touched.update([f"level:{level}", *(f"ward:{w}" for w in wards)])
        return result

    async def expire_ward_reservations(
        self, ward: str, hold_seconds: float, sweep: UUID
    ) -> ChangeResult:
        """Release the ward's reservations for bed managers' requests held longer than
        `hold_seconds` (Redis's clock); each bed serves the ward's queue first; atomic. `sweep`
        names this sweep (its seen key)."""
        args: list[str | int | float] = [60, self.channel, ward, hold_seconds]
        raw = await self._expire_ward(keys=self._keys(ward, sweep, "expire"), args=args)
        result = ChangeResult.from_json(raw)
        if result.expired:
            self._touched.add(f"ward:{ward}")
        return result

    async def critical_care_waiting(self, level: str) -> int:
        return int(await self.redis.zcard(self.keys.level(level, "queue")))

    async def statuses(self, ward: str) -> dict[str, BedStatus]:
        raw = await self.redis.hgetall(self._keys(ward)[0])
        return {_text(bed): BedStatus(_text(status)) for bed, status in raw.items()}

    async def counts(self, ward: str) -> tuple[dict[BedStatus, int], int]:
        """Beds by status (every status present, zero when none) and patients waiting, read
        together in one script (no per-bed reply to parse)."""
        by_status, waiting, _ = await self.ward_counts(ward)
        return by_status, waiting

    async def ward_counts(self, ward: str) -> tuple[dict[BedStatus, int], int, dict[str, int]]:
        """As `counts`, and blocked beds by recorded reason code (only codes present)."""
        keys = self._keys(ward)
        flat = await self._counts(keys=[keys[0], keys[5], keys[9]], args=[])
        pairs = {_text(k): int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        waiting = pairs.pop("_waiting", 0)
        by_status = {status: pairs.get(status.value, 0) for status in BedStatus}
        blocked = {
            k.removeprefix("blocked:"): n for k, n in pairs.items() if k.startswith("blocked:")
        }
        return by_status, waiting, blocked

    async def waiting_count(self, ward: str) -> int:
        return int(await self.redis.zcard(self._keys(ward)[5]))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
