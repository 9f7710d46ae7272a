"""hospital.layout, followed: every scheduler replica applies every ward layout change.

At start the scheduler reads hospital.layout to its end (one consumer without a group: each
replica reads the whole topic) and folds it over its layout file (`layout.folded`), before it
creates the layout's beds and takes its first snapshots. It then follows the topic with the same
consumer and applies each `WardLayoutSet` as it arrives (`LayoutFollower.apply`):

1. Redis: the ward's new beds are created as available (`ENSURE_BEDS`), beds that left the
   ward are removed if available or blocked (`REMOVE_BEDS`, one script per ward). A bed in use
   (its state changed after the API's check) stays, counted as `beds_kept` and logged without
   patient data; its removal is tried again on each poll until it is free.
2. The scheduler's layout is replaced (`Scheduler.apply_layout`): allocation, the API and the
   critical-care wards of each level see the new ward from then on.
3. The ward's snapshot (beds.state) and availability (beds.availability) are published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from uuid import uuid4

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.layout import WardLayoutSet
from schemas.topics import HOSPITAL_LAYOUT
from schemas.vocabulary import BedStatus
from services.common.handlers import Output
from services.common.hospital import HospitalLayout, Ward
from services.common.kafka import make_reader, read_to_end, topic
from services.common.settings import ServiceSettings
from services.scheduler.app import Scheduler
from services.scheduler.decisions import Sweep
from services.scheduler.domain import allocation_restriction
from services.scheduler.layout import folded, leaving, refusal
from services.scheduler.metrics import LAYOUT_CHANGES
from services.scheduler.store import RedisBedStore

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 120.0
"""How long reading hospital.layout to its end may take at start."""
POLL_MILLISECONDS = 1000
"""How long the follower waits for a change before it retries beds that could not leave."""


class LayoutFeed:
    """One consumer without a group on hospital.layout: read to its end, then followed."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.reader = make_reader(settings)
        self.name = topic(settings, HOSPITAL_LAYOUT)

    async def start(self) -> None:
        await self.reader.start()

    async def stop(self) -> None:
        await self.reader.stop()

    async def read_to_end(
        self, timeout_seconds: float = READ_TIMEOUT_SECONDS
    ) -> list[WardLayoutSet]:
        """Every change on the topic up to its end now, oldest first (by record time)."""
        records: list[ConsumerRecord[bytes, bytes]] = []
        last: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + timeout_seconds
        async with aclosing(read_to_end(self.reader, self.name, deadline)) as read:
            async for record in read:
                records.append(record)
                last[TopicPartition(record.topic, record.partition)] = record.offset
        if not self.reader.assignment():
            log.warning("topic %s not found: layout changes are not followed", self.name)
        # read_to_end may have fetched past the end: go on from just after what it gave.
        for tp in self.reader.assignment():
            if tp in last:
                self.reader.seek(tp, last[tp] + 1)
            else:  # nothing up to the end: whatever is there now came after it
                await self.reader.seek_to_beginning(tp)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return [change for r in records if (change := self._decoded(r)) is not None]

    async def next_changes(self, timeout_ms: int = POLL_MILLISECONDS) -> list[WardLayoutSet]:
        """The changes that arrived since the last call (waits up to `timeout_ms` for one)."""
        if not self.reader.assignment():
            await asyncio.sleep(timeout_ms / 1000)
            return []
        batch = await self.reader.getmany(timeout_ms=timeout_ms)
        records = sorted(
            (r for rs in batch.values() for r in rs), key=lambda r: (r.timestamp, r.offset)
        )
        return [change for r in records if (change := self._decoded(r)) is not None]

    def _decoded(self, record: ConsumerRecord[bytes, bytes]) -> WardLayoutSet | None:
        try:
            change: WardLayoutSet = decode(HOSPITAL_LAYOUT, record.value or b"")
        except ValidationError as error:  # skipped by every replica alike
            LAYOUT_CHANGES.labels("invalid").inc()
            log.warning(
                "invalid layout change skipped partition=%d offset=%d errors=%d",
                record.partition,
                record.offset,
                error.error_count(),
            )
            return None
        return change


async def current_layout(
    settings: ServiceSettings, base: HospitalLayout, timeout_seconds: float = READ_TIMEOUT_SECONDS
) -> HospitalLayout:
    """`base` (the layout file) with every change on hospital.layout folded over it."""
    feed = LayoutFeed(settings)
    await feed.start()
    try:
        return folded(base, await feed.read_to_end(timeout_seconds))
    finally:
        await feed.stop()


async def settle_ward(
    store: RedisBedStore, ward: Ward, old: Ward | None = None
) -> dict[str, BedStatus]:
    """Make Redis hold the ward's beds: create the missing ones as available, remove those not
    in its definition if available or blocked. Returns the beds that stayed, with their status."""
    await store.ensure_ward(ward)
    gone = leaving(ward, (await store.statuses(ward.id)).keys(), old)
    if not gone:
        return {}
    return (await store.remove_beds(ward.id, gone)).kept


async def settle_layout(store: RedisBedStore, layout: HospitalLayout) -> dict[str, tuple[str, ...]]:
    """`settle_ward` for every ward (at start); returns, per ward, the beds that stayed."""
    kept = {}
    for ward in layout.wards:
        stayed = await settle_ward(store, ward)
        if stayed:
            log.warning("beds left the layout but are in use ward=%s beds=%d", ward.id, len(stayed))
            kept[ward.id] = tuple(stayed)
    return kept


class LayoutFollower:
    """Applies each change on hospital.layout to this replica (see the module's docstring)."""

    def __init__(
        self,
        scheduler: Scheduler,
        feed: LayoutFeed,
        producer: AIOKafkaProducer,
        settings: ServiceSettings,
        leaving: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        """`leaving`: per ward, beds that already could not leave (from `settle_layout`)."""
        self.scheduler = scheduler
        self.feed = feed
        self.producer = producer
        self.settings = settings
        self.leaving = dict(leaving or {})
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Follow the topic until `stop()`; a Redis or broker failure ends it with the error."""
        while not self._stopping.is_set():
            for change in await self.feed.next_changes():
                await self._send(await self.apply(change))
            if self.leaving:
                await self._send(await self.retry())

    async def apply(self, change: WardLayoutSet) -> list[Output]:
        ward = change.ward.as_ward()
        old = self.scheduler.layout.ward(ward.id)
        store = self.scheduler.store
        in_the_way = refusal(old, ward, await store.statuses(ward.id))
        if in_the_way is not None and in_the_way.reason == "level_of_care_in_use":
            # The API refused this; the state changed after its check. The layout is the
            # topic's, whatever Redis holds: applied, and said.
            log.warning("level of care changed with beds in use ward=%s", ward.id)
        layout = self.scheduler.layout.with_ward(ward)
        # A level of care moved to or from hdu/icu changes the ward's hash tag: its state moves.
        for moved in await store.use_layout(layout):
            log.info("ward state moved to its new level's keys ward=%s", moved)
        # Patients waiting for the ward: which beds fit them now (from the sex and needs kept
        # with their wait), before new beds are offered to them.
        eligible = {
            patient: allocation_restriction(ward, profile.get("needs") or (), profile.get("sex"))
            for patient, profile in (await store.waiting_profiles(ward.id)).items()
            if profile
        }
        await store.set_eligible(ward.id, eligible)
        stayed = await settle_ward(store, ward, old)
        if stayed:
            self.leaving[ward.id] = tuple(stayed)
            statuses = ",".join(sorted({status.value for status in stayed.values()}))
            log.warning(
                "beds left the layout but are in use: they stay until free ward=%s beds=%d"
                " statuses=%s",
                ward.id,
                len(stayed),
                statuses,
            )
        else:
            self.leaving.pop(ward.id, None)
        LAYOUT_CHANGES.labels("beds_kept" if stayed else "applied").inc()
        log.info(
            "layout change applied ward=%s beds=%d by=%s",
            ward.id,
            len(ward.beds),
            change.changed_by,
        )
        return await self.scheduler.apply_layout(layout, ward.id, change)

    async def retry(self) -> list[Output]:
        """Remove the beds that stayed once they are free; the ward's state is published after."""
        outputs: list[Output] = []
        for ward_id, beds in list(self.leaving.items()):
            removal = await self.scheduler.store.remove_beds(ward_id, beds)
            still = tuple(bed for bed in beds if bed in removal.kept)
            if still:
                self.leaving[ward_id] = still
            else:
                del self.leaving[ward_id]
            if len(still) < len(beds):
                log.info("beds that left the layout are gone now ward=%s", ward_id)
                layout = self.scheduler.layout
                sweep = Sweep(uuid4(), datetime.now(UTC))
                outputs += await self.scheduler.apply_layout(layout, ward_id, sweep)
        return outputs

    async def _send(self, outputs: Sequence[Output]) -> None:
        futures = []
        for output in outputs:
            key = output.event.kafka_key() if hasattr(output.event, "kafka_key") else None
            name = topic(self.settings, output.spec)
            futures.append(await self.producer.send(name, value=encode(output.event), key=key))
        if futures:
            await asyncio.gather(*futures)
