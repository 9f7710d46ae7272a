"""Fusion service: events.clean -> patients.state, on the plain stage loop (`StageRunner`). One
`PatientRecord` per patient, kept in memory and in a compacted changelog topic
(`<consumer group>-patients-changelog`, one partition per events.clean partition). The rules are in
`domain.py`; this is the transport shell.

- **Events.** Each clean clinical event is applied to the patient's record; a snapshot is sent
  when the throttle allows one. Bed and resource events are the scheduler's: skipped. Vital
  signs are read without their `origins`, which fusion never uses (`reader.py`).
- **Changelog.** A changed record is written to the changelog (the latest version, on the
  partition of the patient's events, kept in the record) once its first unwritten change is
  `changelog_interval_seconds` old (2 s by default): at most once per interval per patient, and
  spread over time, not all at once. The stage loop commits a batch's offsets only when every
  change made up to the end of that batch is written and acknowledged (`StageRunner(state=)`),
  so a crash replays at most the events since onto records at least as recent, and applying an
  event twice changes nothing (`domain.apply`). With a write per changed record per batch, the
  bench's 1,000 patients made the changelog a record per event; with all of them at a commit
  every 2 s, the writes stalled the loop (p99 of clean -> state 48 -> 250 ms at 1,000/s).
- **Flush.** Every `flush_check_interval_seconds` the tick looks at the owned patients whose
  pending change or next staleness is due (an in-memory index of due times) and emits what the
  throttle allows; the records it changes go to the changelog like any other change.
- **Takeover.** At each assignment the records of newly owned partitions are read from the
  changelog to its end, those of partitions no longer owned are dropped, the index is rebuilt,
  and for each patient taken over the last emitted snapshot is sent again, identical (same id): a
  kill -9 can lose a snapshot whose changelog write survived. Consumers deduplicate by `event_id`.

The changelog's key is the patient id as a JSON string and its value the record's JSON; values
written by the faust worker fusion ran on before (the JSON as a JSON string) are read too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from schemas.patients import PatientStateUpdated
from schemas.topics import EVENTS_CLEAN, PATIENTS_STATE, TopicSpec
from services.common.handlers import RECORD_PARTITION, Outgoing, Output, StateRecord
from services.common.kafka import make_reader, read_to_end
from services.common.stage import StageRunner
from services.fusion.adt import ADT_EVENT_TYPES
from services.fusion.care import CARE_EVENT_TYPES
from services.fusion.config import FusionSettings
from services.fusion.domain import (
    FusionPolicy,
    Outcome,
    PatientRecord,
    flush,
    handle,
    next_due_timestamp,
)
from services.fusion.domain import republish as last_snapshot
from services.fusion.reader import read_clean_event

STAGE = "fusion"
CLINICAL_EVENTS = frozenset(
    {
        "VitalSignsRecorded",
        "Spo2ScaleSet",
        *(t.__name__ for t in CARE_EVENT_TYPES),
        *(t.__name__ for t in ADT_EVENT_TYPES),
    }
)
log = logging.getLogger(__name__)

SNAPSHOTS = Counter(
    "wardflow_snapshots_total",
    "Patient state snapshots fusion sent, by trigger: change (scoring-relevant, at once), "
    "interval (throttled changes), republish (after taking over a partition).",
    ["trigger"],
)


def changelog_topic(settings: FusionSettings) -> str:
    """The compacted topic that holds every patient's record (the name faust gave it)."""
    return f"{settings.group_for(STAGE)}-patients-changelog"


def parse_record(value: bytes) -> PatientRecord:
    """A changelog value: the record's JSON, or (written by the earlier faust worker) that JSON
    as a JSON string."""
    if value[:1] == b'"':
        return PatientRecord.model_validate_json(json.loads(value))
    return PatientRecord.model_validate_json(value)


class Fusion:
    """The stage's handler, ticker, batch end and assignment hook around the patients' records."""

    def __init__(self, settings: FusionSettings, policy: FusionPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or settings.policy()
        self.changelog = changelog_topic(settings)
        self.records: dict[str, PatientRecord] = {}
        self.due: dict[str, float] = {}  # patient -> Unix time the tick should look again
        # Patient -> time.monotonic() of its first change not on the changelog yet; in insertion
        # order, so the oldest change comes first.
        self.unwritten: dict[str, float] = {}
        self.owned: frozenset[int] = frozenset()

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        if event.kind not in CLINICAL_EVENTS:
            return []  # bed and resource events are the scheduler's, not a patient's
        outcome = handle(
            self.records.get(event.patient_id),
            event,
            now=datetime.now(UTC),
            partition=RECORD_PARTITION.get(),
            policy=self.policy,
        )
        return self._apply(outcome)

    def state_writes(self, now: float, everything: bool) -> tuple[list[StateRecord], float | None]:
        """The changelog records due: each changed record once its first unwritten change is
        `changelog_interval_seconds` old (all of them with `everything`), the latest version;
        and the time of the oldest change left unwritten."""
        due = now - self.settings.changelog_interval_seconds
        writes: list[StateRecord] = []
        while self.unwritten:
            patient_id, changed_at = next(iter(self.unwritten.items()))
            if changed_at > due and not everything:
                break
            del self.unwritten[patient_id]
            if (record := self.records.get(patient_id)) is not None:
                writes.append(self._changelog_record(record))
        return writes, next(iter(self.unwritten.values()), None)

    async def tick(self, owned: frozenset[int]) -> list[Outgoing]:
        """Emit what the throttle allows for the owned patients that are due."""
        now = datetime.now(UTC)
        outputs: list[Outgoing] = []
        for patient_id in [p for p, at in self.due.items() if at <= now.timestamp()]:
            record = self.records.get(patient_id)
            if record is None or record.partition not in owned:
                self.due.pop(patient_id, None)
                continue
            outcome = flush(record, now, self.policy)
            outputs += self._apply(outcome)
            self._schedule(outcome.record)
        return outputs  # the records it changed go to the changelog like any other change

    async def on_assigned(self, partitions: frozenset[int]) -> list[Outgoing]:
        """Take over newly owned partitions from the changelog; forget the others."""
        newly = partitions - self.owned
        self.owned = partitions
        for patient_id in [p for p, r in self.records.items() if r.partition not in partitions]:
            del self.records[patient_id]
            self.unwritten.pop(patient_id, None)
        restored = await self._restore(newly) if newly else {}
        self.records.update(restored)
        self.due.clear()
        for record in self.records.values():
            self._schedule(record)
        outputs: list[Outgoing] = []
        for record in restored.values():
            if (state := last_snapshot(record, self.policy)) is not None:
                outputs.append(self._emit(state, "republish"))
        log.info("took over partitions=%s patients=%d", sorted(partitions), len(self.records))
        return outputs

    def _apply(self, outcome: Outcome) -> list[Output]:
        if outcome.changed:
            record = outcome.record
            self.records[record.patient_id] = record
            self.unwritten.setdefault(record.patient_id, time.monotonic())
            self._schedule(record)
        if outcome.snapshot is None or outcome.trigger is None:
            return []
        return [self._emit(outcome.snapshot, outcome.trigger)]

    def _emit(self, state: PatientStateUpdated, trigger: str) -> Output:
        SNAPSHOTS.labels(trigger).inc()
        return Output(PATIENTS_STATE, state)

    def _changelog_record(self, record: PatientRecord) -> StateRecord:
        return StateRecord(
            self.changelog,
            record.partition,
            json.dumps(record.patient_id).encode(),
            record.model_dump_json().encode(),
        )

    def _schedule(self, record: PatientRecord) -> None:
        at = next_due_timestamp(record, self.policy)
        if at is None:
            self.due.pop(record.patient_id, None)
        else:
            self.due[record.patient_id] = at

    async def _restore(self, partitions: frozenset[int]) -> dict[str, PatientRecord]:
        """The latest record per patient on these changelog partitions, read to their end."""
        records: dict[str, PatientRecord] = {}
        reader = make_reader(self.settings)
        await reader.start()
        try:
            deadline = time.monotonic() + self.settings.restore_timeout_seconds
            read = read_to_end(reader, self.changelog, deadline, only=partitions)
            async with aclosing(read) as changelog:
                async for entry in changelog:
                    patient_id = json.loads(entry.key or b'""')
                    if entry.value is None:
                        records.pop(patient_id, None)  # a tombstone
                    else:
                        records[patient_id] = parse_record(entry.value)
        finally:
            await reader.stop()
        return records


def build(settings: FusionSettings) -> StageRunner:
    fusion = Fusion(settings)
    return StageRunner(
        STAGE,
        settings,
        [EVENTS_CLEAN],
        fusion,
        ticker=fusion.tick,
        tick_seconds=settings.flush_check_interval_seconds,
        state=fusion,
        on_assigned=fusion.on_assigned,
        kinds=CLINICAL_EVENTS,
        decoder=read_clean_event,
    )
