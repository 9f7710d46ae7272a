"""Ingest over real HTTP (uvicorn) in front of the real embedded broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from schemas.admissions import PatientAdmitted
from schemas.topics import EVENTS_RAW
from services.common.embedded import free_port, start_kafka
from services.common.kafka import create_topics
from services.ingest.config import IngestSettings
from services.ingest.guards import pseudonymise
from tests.integration.ingest_fixtures import AUTH, KEY, PSEUDONYM_KEY, running_ingest
from tests.support import collect


@pytest.fixture
async def ingest_settings(settings_factory) -> IngestSettings:
    return await settings_factory(
        IngestSettings,
        http_port=free_port(),
        api_keys={"ehr": KEY},
        pseudonym_key=PSEUDONYM_KEY,
        mllp_port=0,
        max_body_bytes=4096,
        max_events_per_request=3,
        broker_timeout_seconds=2.0,
    )


def admission(patient: str = "P1", **extra: object) -> dict[str, object]:
    return {
        "kind": "PatientAdmitted",
        "occurred_at": datetime.now(UTC).isoformat(),
        "patient_id": patient,
        "ward": "WARD-A",
        **extra,
    }


async def test_accepted_events_are_on_events_raw(ingest_settings, kafka) -> None:
    async with running_ingest(ingest_settings) as base, httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/events", json={"events": [admission("P1"), admission("P2")]}, headers=AUTH
        )
    assert response.status_code == 202
    ids = response.json()["accepted"]
    events = await collect(kafka.url, ingest_settings, EVENTS_RAW, lambda e: len(e) >= 2)
    assert sorted(str(e.event_id) for e in events) == sorted(ids)
    assert all(isinstance(e, PatientAdmitted) and e.source == "ehr" for e in events)


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        ({}, {"events": [admission()]}, 401, "Authorization"),
        ({"Authorization": "Bearer wrong"}, {"events": [admission()]}, 401, "Authorization"),
        (AUTH, {"events": [admission(), admission(), admission(), admission()]}, 413, "events"),
        (AUTH, {"events": [admission(patient="SECRET MRN 42" * 6)]}, 422, "patient_id"),
        (AUTH, {"events": [admission(occurred_at="2026-01-01T00:00:00")]}, 422, "occurred_at"),
        (AUTH, {"events": [admission(source="me")]}, 422, "source"),
        (AUTH, {"events": [admission(wrd="x")]}, 422, "wrd"),
        (AUTH, {"events": [admission(note="x" * 5000)]}, 413, "(body)"),
    ],
    ids=[
        "no-credential",
        "wrong-key",
        "too-many-events",
        "invalid-patient-id",
        "naive-timestamp",
        "source-set-by-sender",
        "unknown-field",
        "body-too-large",
    ],
)
async def test_refuses_precisely(ingest_settings, headers, body, status, field) -> None:
    async with running_ingest(ingest_settings) as base, httpx.AsyncClient() as client:
        response = await client.post(f"{base}/v1/events", json=body, headers=headers)
    assert response.status_code == status
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors]
    assert "SECRET MRN 42" not in response.text, "error messages must not echo submitted values"


async def test_invalid_json_is_400(ingest_settings) -> None:
    async with running_ingest(ingest_settings) as base, httpx.AsyncClient() as client:
        response = await client.post(f"{base}/v1/events", content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_json"


async def test_batch_with_one_bad_event_writes_nothing(ingest_settings, kafka) -> None:
    good, bad = admission("P-GOOD"), admission("P-BAD", ward="")
    marker = admission("P-MARKER")
    async with running_ingest(ingest_settings) as base, httpx.AsyncClient() as client:
        refused = await client.post(f"{base}/v1/events", json={"events": [good, bad]}, headers=AUTH)
        accepted = await client.post(f"{base}/v1/events", json=marker, headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"index": 1, "field": "ward", "problem": "String should have at least 1 character"}
    ]
    assert accepted.status_code == 202
    events = await collect(
        kafka.url,
        ingest_settings,
        EVENTS_RAW,
        lambda e: any(x.patient_id == pseudonymise("P-MARKER", PSEUDONYM_KEY.encode()) for x in e),
    )
    assert [e.patient_id for e in events] == [pseudonymise("P-MARKER", PSEUDONYM_KEY.encode())]


async def test_answers_503_with_retry_after_when_the_broker_is_down(
    settings_factory, tmp_path: Path
) -> None:
    broker = await start_kafka(tmp_path / "logs")
    try:
        settings = await settings_factory(
            IngestSettings,
            kafka_bootstrap_servers=broker.url,
            http_port=free_port(),
            mllp_port=0,
            api_keys={"ehr": KEY},
            pseudonym_key=PSEUDONYM_KEY,
            broker_timeout_seconds=2.0,
        )
        await create_topics(settings, partitions=1)
        async with running_ingest(settings) as base, httpx.AsyncClient(timeout=30) as client:
            before = await client.post(f"{base}/v1/events", json=admission(), headers=AUTH)
            broker.stop()
            after = await client.post(f"{base}/v1/events", json=admission(), headers=AUTH)
    finally:
        broker.stop()
    assert before.status_code == 202
    assert after.status_code == 503
    assert after.headers["Retry-After"] == "5"
    assert after.json()["reason"] == "broker_unavailable"
