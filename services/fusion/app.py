"""Fusion service (faust): events.clean -> patients.state, one changelog-backed table entry per
patient. A snapshot is emitted only when the patient's state actually changed."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

import faust
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.deadletter import EventDeadLettered
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, PATIENTS_STATE, full_name
from services.common import metrics
from services.common.errors import summarise
from services.common.stage import STAGE_READY
from services.fusion.config import FusionSettings
from services.fusion.domain import PatientRecord, apply, snapshot
from services.fusion.transport import TunedFetchApp

STAGE = "fusion"
log = logging.getLogger(__name__)


def build(settings: FusionSettings) -> faust.App:
    """The fusion faust app: one agent over events.clean and the `patients` table."""
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
            if not hasattr(event, "patient_id"):
                return  # bed and resource events are the scheduler's, not a patient's
            stored = patients.get(event.patient_id)
            current = PatientRecord.model_validate_json(stored) if stored else None
            updated = apply(current, event)
            if updated is None:
                return
            patients[event.patient_id] = updated.model_dump_json()
            state = snapshot(
                updated, now=now, source="wardflow-fusion", cause_recorded_at=event.recorded_at
            )
            await state_topic.send(key=state.kafka_key(), value=encode(state))
            metrics.EVENTS_OUT.labels(STAGE, PATIENTS_STATE.name).inc()

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

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _ready(sender: Any, **kwargs: Any) -> None:
        STAGE_READY.labels(STAGE).set(1)
        log.info("stage ready")

    return app
