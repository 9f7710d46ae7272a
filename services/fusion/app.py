"""Fusion service (faust): events.clean -> patients.state, one changelog-backed table entry per
patient (a `PatientRecord` as JSON). The rules are in `domain.py`; this is the transport shell.

- **Agent.** Each clean clinical event is applied to the patient's record; the record is written
  back when it changed, and a snapshot is sent when the throttle allows one.
- **Flush timer.** Every `flush_check_interval_seconds` it looks at the patients whose pending
  change or next staleness is due (an in-memory index of due times, rebuilt from the table after
  every rebalance) and emits what the throttle allows. It writes the table outside a stream, so
  every write names its changelog partition explicitly: the patient's events.clean partition,
  kept in the record. The timer does nothing while the worker rebalances or recovers.
- **Takeover.** When a rebalance completes (the table is recovered by then), the index is rebuilt
  for the partitions now owned, and for each patient on a newly owned partition the last emitted
  snapshot is sent again, identical (same id): a kill -9 can lose a snapshot whose table write
  survived. Consumers deduplicate by `event_id`.
- Agent, timer and takeover take one lock, so a patient's snapshots are sent in version order.
- **Lag.** A service started with the worker sets `wardflow_consumer_lag_records` every
  `consumer_lag_seconds` (`transport.consumer_lag`); the agent's `metrics.processing` sets the
  last processed time, and the event-time lag is observed per event.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.deadletter import EventDeadLettered
from schemas.patients import PatientStateUpdated
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, PATIENTS_STATE, full_name
from services.common import metrics
from services.common.errors import summarise
from services.common.kafka import make_reader
from services.common.stage import STAGE_READY
from services.fusion.adt import ADT_EVENT_TYPES
from services.fusion.care import CARE_EVENT_TYPES
from services.fusion.config import FusionSettings
from services.fusion.domain import PatientRecord, flush, handle, next_due, republish
from services.fusion.transport import TunedFetchApp, consumer_lag

STAGE = "fusion"
CLINICAL_EVENTS = (
    "VitalSignsRecorded",
    "Spo2ScaleSet",
    *(t.__name__ for t in CARE_EVENT_TYPES),
    *(t.__name__ for t in ADT_EVENT_TYPES),
)
log = logging.getLogger(__name__)

SNAPSHOTS = Counter(
    "wardflow_snapshots_total",
    "Patient state snapshots fusion sent, by trigger: change (scoring-relevant, at once), "
    "interval (throttled changes), republish (after taking over a partition).",
    ["trigger"],
)


def build(settings: FusionSettings) -> faust.App:
    """The fusion faust app: one agent over events.clean, the `patients` table, a flush timer."""
    policy = settings.policy()
    app = TunedFetchApp(
        settings.group_for(STAGE),
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        datadir=settings.state_dir,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, settings.kafka_session_timeout_ms / 5000),
        broker_commit_every=settings.kafka_max_batch,
        broker_commit_interval=0.5,
        producer_acks=-1,
        topic_replication_factor=settings.kafka_replication_factor,
        producer_linger_ms=2,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        table_cleanup_interval=3600.0,
    )
    clean_topic = app.topic(
        full_name(EVENTS_CLEAN, settings.topic_prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    state_topic = app.topic(
        full_name(PATIENTS_STATE, settings.topic_prefix),
        key_serializer="raw",
        value_serializer="raw",
    )
    dlq_topic = app.topic(
        full_name(EVENTS_DLQ, settings.topic_prefix), key_serializer="raw", value_serializer="raw"
    )
    patients = app.Table(
        "patients", default=None, key_type=str, value_type=str, partitions=settings.partitions
    )
    lock = asyncio.Lock()
    due: dict[str, float] = {}  # patient -> Unix time the timer should look at it again
    owned: set[int] = set()  # events.clean partitions this worker owns since the last rebalance

    # The record last stored per patient, parsed, with the JSON it was stored as: a patient's next
    # event reuses it instead of parsing the table's JSON again, as long as the table still holds
    # that very value (a recovery or takeover that replaced it is parsed afresh).
    parsed: dict[str, tuple[str, PatientRecord]] = {}

    def load(patient_id: str) -> PatientRecord | None:
        stored = patients.get(patient_id)
        if not stored:
            return None
        cached = parsed.get(patient_id)
        if cached is not None and cached[0] is stored:
            return cached[1]
        record = PatientRecord.model_validate_json(stored)
        parsed[patient_id] = (stored, record)
        return record

    def store(record: PatientRecord) -> None:
        value = record.model_dump_json()
        patients.data[record.patient_id] = value
        parsed[record.patient_id] = (value, record)
        patients.send_changelog(record.partition, record.patient_id, value)

    def schedule(record: PatientRecord) -> None:
        at = next_due(record, policy)
        if at is None:
            due.pop(record.patient_id, None)
        else:
            due[record.patient_id] = at.timestamp()

    async def emit(state: PatientStateUpdated, trigger: str) -> None:
        await state_topic.send(key=state.kafka_key(), value=encode(state))
        metrics.EVENTS_OUT.labels(STAGE, PATIENTS_STATE.name).inc()
        SNAPSHOTS.labels(trigger).inc()

    async def dead_letter(message: Any, reason: str, detail: str) -> None:
        metrics.EVENTS_REJECTED.labels(STAGE, reason).inc()
        value: bytes = message.value or b""
        letter = EventDeadLettered(
            stage=STAGE,
            reason=reason,
            detail=detail,
            failed_at=datetime.now(UTC),
            original_topic=EVENTS_CLEAN.name,
            original_partition=message.partition,
            original_offset=message.offset,
            original_key=message.key.decode("utf-8", "replace") if message.key else None,
            original_value=base64.b64encode(value).decode(),
            original_value_encoding="base64",
        )
        await dlq_topic.send(key=letter.kafka_key(), value=encode(letter))
        metrics.EVENTS_OUT.labels(STAGE, EVENTS_DLQ.name).inc()

    async def fuse_one(message: Any) -> None:
        metrics.EVENTS_IN.labels(STAGE, EVENTS_CLEAN.name).inc()
        with metrics.processing(STAGE):
            try:
                event = decode(EVENTS_CLEAN, message.value or b"")
            except ValidationError as error:
                await dead_letter(message, "invalid_event", summarise(error))
                return
            now = datetime.now(UTC)
            lag = (now - event.occurred_at).total_seconds()
            metrics.EVENT_TIME_LAG_SECONDS.labels(STAGE).observe(max(0.0, lag))
            if event.kind not in CLINICAL_EVENTS:
                return  # bed and resource events are the scheduler's, not a patient's
            async with lock:
                outcome = handle(
                    load(event.patient_id),
                    event,
                    now=now,
                    partition=message.partition,
                    policy=policy,
                )
                if outcome.changed:
                    store(outcome.record)
                    schedule(outcome.record)
                if outcome.snapshot is not None and outcome.trigger is not None:
                    await emit(outcome.snapshot, outcome.trigger)

    @app.agent(clean_topic)
    async def fuse(stream: Any) -> None:
        async for record in stream.events():
            message = record.message
            try:
                await fuse_one(message)
            except Exception as error:  # a poison message must not stop the partition
                log.error(
                    "fusion failed error=%s partition=%d offset=%d",
                    type(error).__name__,
                    message.partition,
                    message.offset,
                )
                await dead_letter(message, "processing_error", f"unexpected {type(error).__name__}")

    async def flush_one(patient_id: str, now: datetime) -> None:
        record = load(patient_id)
        if record is None or record.partition not in owned:
            due.pop(patient_id, None)
            return
        outcome = flush(record, now, policy)
        if outcome.changed:
            store(outcome.record)
        schedule(outcome.record)
        if outcome.snapshot is not None and outcome.trigger is not None:
            await emit(outcome.snapshot, outcome.trigger)

    @app.timer(interval=settings.flush_check_interval_seconds)
    async def flush_due() -> None:
        now = datetime.now(UTC)
        async with lock:
            for patient_id in [p for p, at in due.items() if at <= now.timestamp()]:
                if app.rebalancing or app.in_recovery:
                    return  # the takeover after the rebalance rebuilds the index
                try:
                    await flush_one(patient_id, now)
                except Exception as error:  # one bad record must not stop the timer
                    due.pop(patient_id, None)  # until its next event schedules it again
                    log.error("fusion flush failed error=%s", type(error).__name__)

    metrics.declare_stage(STAGE, [EVENTS_CLEAN.name])

    class LagWatcher(faust.Service):
        """Sets the consumer lag every `consumer_lag_seconds`, asking the broker through its own
        client (started and stopped with the worker)."""

        reader: AIOKafkaConsumer | None = None

        async def on_start(self) -> None:
            self.reader = make_reader(settings)
            await self.reader.start()

        async def on_stop(self) -> None:
            if self.reader is not None:
                await self.reader.stop()

        @faust.Service.timer(settings.consumer_lag_seconds)
        async def _measure(self) -> None:
            assert self.reader is not None
            try:
                lag = await consumer_lag(app.consumer, self.reader, clean_topic.get_topic_name())
            except Exception as error:  # e.g. a rebalance meanwhile: must not stop the worker
                log.debug("consumer lag not read error=%s", type(error).__name__)
                return
            metrics.CONSUMER_LAG_RECORDS.labels(STAGE, EVENTS_CLEAN.name).set(lag)

    app.service(LagWatcher)

    async def take_over() -> None:
        clean_name = clean_topic.get_topic_name()
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == clean_name}
        async with lock:
            newly = active - owned
            owned.clear()
            owned.update(active)
            due.clear()
            count = 0
            for stored in list(patients.values()):
                record = PatientRecord.model_validate_json(stored)
                if record.partition not in active:
                    continue
                count += 1
                schedule(record)
                if record.partition in newly and (state := republish(record, policy)):
                    await emit(state, "republish")
        log.info("took over partitions=%s patients=%d", sorted(active), count)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _ready(sender: Any, **kwargs: Any) -> None:
        try:
            await take_over()
        except Exception:
            log.exception("fusion takeover failed")
            raise
        STAGE_READY.labels(STAGE).set(1)
        log.info("stage ready")

    return app
