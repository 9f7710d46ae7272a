"""Fusion service: events.clean -> patients.state, on the plain stage loop (`StageRunner`). One
`PatientRecord` per patient, kept in memory and in a compacted changelog topic
(`<consumer group>-patients-changelog`, one partition per events.clean partition). The rules are in
`domain.py`; this is the transport shell.

- **Events.** Each clean clinical event is applied to the patient's record; a snapshot is sent
  when the throttle allows one. Bed and resource events are the scheduler's: skipped.
- **Changelog.** At each commit of the offsets (every `commit_interval_seconds`, 2 s by
  default), every record changed since the last commit is written once (the latest) to the
  changelog, on the partition of the patient's events (kept in the record), before the offsets are
  committed: a crash replays at most the uncommitted events onto the state written with the last
  commit, and applying an event twice changes nothing (`domain.apply`). Once per interval instead
  of once per batch: with many patients a batch touches each of them once, and the changelog was
  a record per event.
- **Flush.** Every `flush_check_interval_seconds` the tick looks at the owned patients whose
  pending change or next staleness is due (an in-memory index of due times) and emits what the
  throttle allows; the records it changes go to the changelog at the next commit.
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
from services.common.kafka import make_reader, read_to_end
from services.common.stage import RECORD_PARTITION, Outgoing, Output, StageRunner, StateRecord
from services.fusion.adt import ADT_EVENT_TYPES
from services.fusion.care import CARE_EVENT_TYPES
from services.fusion.config import FusionSettings
from services.fusion.domain import FusionPolicy, Outcome, PatientRecord, flush, handle, next_due
from services.fusion.domain import republish as last_snapshot

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
        self.unsaved: dict[str, PatientRecord] = {}  # changed, not yet on the changelog
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

    async def before_commit(self) -> list[Outgoing]:
        """The records changed since the last commit, each once, for the changelog."""
        return self._save()

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
        return outputs  # the records it changed go to the changelog at the next commit

    async def on_assigned(self, partitions: frozenset[int]) -> list[Outgoing]:
        """Take over newly owned partitions from the changelog; forget the others."""
        newly = partitions - self.owned
        self.owned = partitions
        for patient_id in [p for p, r in self.records.items() if r.partition not in partitions]:
            del self.records[patient_id]
            self.unsaved.pop(patient_id, None)
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
            self.unsaved[record.patient_id] = record
            self._schedule(record)
        if outcome.snapshot is None or outcome.trigger is None:
            return []
        return [self._emit(outcome.snapshot, outcome.trigger)]

    def _emit(self, state: PatientStateUpdated, trigger: str) -> Output:
        SNAPSHOTS.labels(trigger).inc()
        return Output(PATIENTS_STATE, state)

    def _save(self) -> list[Outgoing]:
        saved: list[Outgoing] = [
            StateRecord(
                self.changelog,
                record.partition,
                json.dumps(patient_id).encode(),
                record.model_dump_json().encode(),
            )
            for patient_id, record in self.unsaved.items()
        ]
        self.unsaved.clear()
        return saved

    def _schedule(self, record: PatientRecord) -> None:
        at = next_due(record, self.policy)
        if at is None:
            self.due.pop(record.patient_id, None)
        else:
            self.due[record.patient_id] = at.timestamp()

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
        before_commit=fusion.before_commit,
        commit_interval_seconds=settings.commit_interval_seconds,
        on_assigned=fusion.on_assigned,
        kinds=CLINICAL_EVENTS,
    )
