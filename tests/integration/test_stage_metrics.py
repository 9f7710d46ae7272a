"""The operational gauges on real components: consumer lag of a stage on the embedded broker (the
plain stage loop and fusion's faust worker), and ingest's per-source last event time."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from schemas.observations import Measurement, VitalSigns, VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW
from schemas.vocabulary import VitalParameter
from services.common.embedded import free_port
from services.common.handlers import Output
from services.common.settings import ServiceSettings
from services.common.stage import StageRunner
from services.ingest.config import IngestSettings
from services.ingest.sources import key_digest
from tests.integration.ingest_fixtures import AUTH, KEY, PSEUDONYM_KEY, running_ingest
from tests.support import RunningStage, ServiceProcess, eventually, metric_value, publish

LAG = "wardflow_consumer_lag_records"


def observed(patient: str, at: datetime | None = None) -> VitalSignsObserved:
    now = datetime.now(UTC)
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=at or now,
        recorded_at=now,
        source="test-monitor",
        patient_id=patient,
        measurements=[Measurement(parameter=VitalParameter.HEART_RATE, value=80, unit="/min")],
    )


async def test_lag_counts_the_records_behind_a_stuck_handler_and_drains_to_zero(
    settings_factory: Any, producer: Any, unique: str
) -> None:
    settings: ServiceSettings = await settings_factory(consumer_lag_seconds=0.1)
    stage = f"lag{unique}"
    release, handled = asyncio.Event(), list[Any]()

    async def handler(spec: Any, event: Any) -> list[Output]:
        handled.append(event)
        await release.wait()  # stuck, e.g. on a store that does not answer
        return []

    def lag() -> float:
        return metric_value(LAG, stage=stage, topic="events.raw")

    async with RunningStage(StageRunner(stage, settings, [EVENTS_RAW], handler)):
        await publish(producer, settings, EVENTS_RAW, observed("P1"))

        async def first_in_handler() -> bool:
            return bool(handled)

        await eventually(first_in_handler)
        await publish(producer, settings, EVENTS_RAW, *(observed("P1") for _ in range(5)))

        async def lag_is(value: float) -> bool:
            return lag() == value

        # The record in the handler (not committed) and the five behind it; nothing processed.
        await eventually(lambda: lag_is(6))
        # The consumer has those five buffered and fetches no more: the lag keeps growing only
        # through the broker's end offsets.
        await publish(producer, settings, EVENTS_RAW, *(observed("P1") for _ in range(4)))
        await eventually(lambda: lag_is(10))
        last = metric_value("wardflow_last_processed_timestamp_seconds", stage=stage)
        assert last == 0, "nothing finished while the handler is stuck"
        started = time.time()
        release.set()
        await eventually(lambda: lag_is(0))
        assert len(handled) == 10
        assert metric_value("wardflow_last_processed_timestamp_seconds", stage=stage) >= started
        assert metric_value("wardflow_event_time_lag_seconds_count", stage=stage) == 10


def scrape(text: str, name: str, **labels: str) -> float | None:
    """One sample of a /metrics page (labels in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(?P<labels>[^}}]*)\}} (?P<value>\S+)", line)
        if match and all(f'{k}="{v}"' in match["labels"] for k, v in labels.items()):
            return float(match["value"])
    return None


async def test_fusion_reports_its_lag_last_processed_time_and_event_time_lag(
    settings_factory: Any, producer: Any, tmp_path: Path
) -> None:
    settings: ServiceSettings = await settings_factory()
    backlog = 1500
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    events = [
        VitalSignsRecorded(
            event_id=uuid4(),
            occurred_at=earlier,
            recorded_at=earlier,
            source="monitor",
            patient_id=f"P{n % 300}",
            vitals=VitalSigns(heart_rate_bpm=60 + n % 50),
        )
        for n in range(backlog)
    ]
    await publish(producer, settings, EVENTS_CLEAN, *events)  # waiting before fusion starts
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_CONSUMER_GROUP": settings.consumer_group,
        "WARDFLOW_PARTITIONS": "2",
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "WARDFLOW_CONSUMER_LAG_SECONDS": "0.1",
    }
    port = free_port()
    seen: list[float] = []
    async with (
        ServiceProcess("fusion", env, tmp_path / "fusion.log", port),
        httpx.AsyncClient() as client,
    ):
        page = ""

        async def drained() -> bool:
            nonlocal page
            page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            value = scrape(page, LAG, stage="fusion", topic="events.clean")
            if value is not None:
                seen.append(value)
            processed = scrape(page, "wardflow_events_in_total", stage="fusion")
            return processed == backlog and value == 0

        await eventually(drained, timeout_seconds=60)
    assert max(seen) > 0, "the backlog showed as lag while fusion worked through it"
    assert max(seen) <= backlog
    last = scrape(page, "wardflow_last_processed_timestamp_seconds", stage="fusion")
    assert last is not None and time.time() - 60 < last <= time.time()
    lagged = scrape(page, "wardflow_event_time_lag_seconds_bucket", stage="fusion", le="60.0")
    assert lagged == 0, "every event occurred 5 minutes ago: none within 60 s"
    assert scrape(page, "wardflow_event_time_lag_seconds_count", stage="fusion") == backlog


async def test_ingest_stamps_each_sender_when_it_last_had_an_event_accepted(
    settings_factory: Any, tmp_path: Path, unique: str
) -> None:
    sender, reader = f"monitors{unique}", f"board{unique}"
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[sources]]\nname = "{sender}"\nkey_sha256 = "{key_digest(KEY)}"\n'
        'kinds = ["VitalSignsObserved"]\n\n'
        f'[[sources]]\nname = "{reader}"\nkey_sha256 = "{key_digest("reader-key-0123456789")}"\n'
        "read = true\n"
    )
    settings: IngestSettings = await settings_factory(
        IngestSettings,
        http_port=free_port(),
        sources_file=str(sources),
        pseudonym_key=PSEUDONYM_KEY,
        mllp_port=0,
    )
    gauge = "wardflow_source_last_event_timestamp_seconds"
    before_start = time.time()
    async with running_ingest(settings) as base, httpx.AsyncClient() as client:
        started = metric_value(gauge, source=sender)
        assert before_start <= started <= time.time(), "a silent sender shows ingest's start"
        assert metric_value(gauge, source=reader) == 0, "an API reader is not a sender"
        lags_before = metric_value("wardflow_event_time_lag_seconds_count", stage="ingest")
        await asyncio.sleep(0.05)
        sent_at = time.time()
        body = {
            "kind": "VitalSignsObserved",
            "occurred_at": datetime.now(UTC).isoformat(),
            "patient_id": "P1",
            "measurements": [{"parameter": "heart_rate", "value": 80, "unit": "/min"}],
        }
        response = await client.post(f"{base}/v1/events", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        assert metric_value(gauge, source=sender) >= sent_at
        last = metric_value("wardflow_last_processed_timestamp_seconds", stage="ingest")
        assert last >= sent_at
        lags = metric_value("wardflow_event_time_lag_seconds_count", stage="ingest")
        assert lags == lags_before + 1

        refused_at = time.time()
        response = await client.post(
            f"{base}/v1/events", json={**body, "kind": "PatientAdmitted"}, headers=AUTH
        )
        assert response.status_code in (403, 422)
        assert metric_value(gauge, source=sender) < refused_at, "a refusal is not an event"
