"""Redis from Kafka: the scheduler's live state rebuilt from the compacted beds.state topic.

Redis is a projection; Kafka is the source of truth. After every event the scheduler publishes a
snapshot of each ward and critical-care queue it touched (`BedStateSnapshot`, read atomically by
one script and stamped with Redis's clock), so the latest snapshot per scope is Redis's latest
state. `rebuild` reads beds.state to its end, keeps the latest snapshot per scope, and compares
it with Redis or writes it back, scope by scope, each in one script.

- `wardflow state rebuild` after a Redis wipe (with the scheduler stopped) restores every scope;
  `--check` only reports the scopes that differ.
- At start the scheduler restores the scopes Redis has lost (`missing_only`) before it creates
  the beds of the layout and publishes its own first snapshots, so a restart after a wipe never
  overwrites Kafka's state with an empty one.
- Given the layout (the file with hospital.layout folded over it, as the scheduler has it), only
  its scopes are restored: its wards and the critical-care levels. Scopes on beds.state outside
  it (a ward no longer in the layout) are left alone and reported, and the layout's scopes that
  beds.state lacks are reported (the scheduler creates their beds when it starts).

Idempotency records (the `seen` keys of applied events, kept 7 days) are not part of a snapshot:
after a rebuild, an event redelivered from before it is applied again (see docs/architecture.md).
"""

from __future__ import annotations

import time
from contextlib import aclosing
from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.beds import BedStateSnapshot
from schemas.codec import decode
from schemas.topics import BEDS_STATE
from services.common.hospital import HospitalLayout
from services.common.kafka import make_reader, read_to_end, topic
from services.common.settings import ServiceSettings
from services.scheduler.domain import CRITICAL_CARE_LEVELS
from services.scheduler.store import RedisBedStore, Snapshot


@dataclass
class RebuildReport:
    """What a rebuild read and did: scopes found on Kafka, those that differed from Redis, and
    those written; with a layout, the scopes found outside it (not restored) and the layout's
    scopes Kafka has no snapshot of."""

    records_read: int = 0
    scopes: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    outside_layout: list[str] = field(default_factory=list)
    not_on_kafka: list[str] = field(default_factory=list)


async def latest_snapshots(
    settings: ServiceSettings, timeout_seconds: float
) -> tuple[dict[str, Snapshot], int]:
    """The latest snapshot per scope on beds.state, and how many records were read."""
    latest: dict[str, Snapshot] = {}
    read = 0
    reader = make_reader(settings)
    await reader.start()
    try:
        deadline = time.monotonic() + timeout_seconds
        name = topic(settings, BEDS_STATE)
        async with aclosing(read_to_end(reader, name, deadline)) as records:
            async for record in records:
                read += 1
                try:
                    snapshot: BedStateSnapshot = decode(BEDS_STATE, record.value or b"")
                except ValidationError:
                    continue  # only the scheduler writes this topic
                known = latest.get(snapshot.scope)
                if known is None or snapshot.taken_at_us > known.taken_at_us:
                    latest[snapshot.scope] = Snapshot(
                        snapshot.scope,
                        snapshot.taken_at_us,
                        dict(snapshot.hashes),
                        {name: list(pairs) for name, pairs in snapshot.sorted_sets.items()},
                    )
    finally:
        await reader.stop()
    return latest, read


def same_state(a: Snapshot, b: Snapshot) -> bool:
    """The same structures and contents (the time they were taken aside); empty = absent."""

    def hashes(s: Snapshot) -> dict[str, dict[str, str]]:
        return {name: values for name, values in s.hashes.items() if values}

    def sets(s: Snapshot) -> dict[str, list[tuple[str, str]]]:
        return {name: pairs for name, pairs in s.sorted_sets.items() if pairs}

    return hashes(a) == hashes(b) and sets(a) == sets(b)


def is_empty(snapshot: Snapshot) -> bool:
    return not any(snapshot.hashes.values()) and not any(snapshot.sorted_sets.values())


async def rebuild(
    settings: ServiceSettings,
    store: RedisBedStore,
    *,
    check_only: bool = False,
    missing_only: bool = False,
    timeout_seconds: float = 120.0,
    layout: HospitalLayout | None = None,
) -> RebuildReport:
    """Compare Redis with the latest snapshots on Kafka and (unless `check_only`) restore the
    scopes that differ; with `missing_only`, only those Redis has nothing for; with `layout`,
    only the layout's scopes."""
    latest, read = await latest_snapshots(settings, timeout_seconds)
    report = RebuildReport(records_read=read, scopes=sorted(latest))
    if layout is not None:
        levels = [level.value for level in CRITICAL_CARE_LEVELS]
        in_layout = set(store.scopes(layout, levels))
        report.outside_layout = [scope for scope in report.scopes if scope not in in_layout]
        report.not_on_kafka = sorted(in_layout - set(latest))
        report.scopes = [scope for scope in report.scopes if scope in in_layout]
    for scope in report.scopes:
        wanted = latest[scope]
        current = await store.snapshot(scope)
        if same_state(current, wanted):
            continue
        report.differing.append(scope)
        if check_only or (missing_only and not is_empty(current)):
            continue
        await store.restore(wanted)
        report.restored.append(scope)
    return report
