"""HL7 v2 over a real MLLP socket and over HTTP, FHIR R4 over HTTP, against the real broker.

Every valid message becomes canonical events on events.raw, every duplicate is absorbed, every
malformed one is refused with a reason, and nothing malformed ever reaches events.raw.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from schemas.admissions import PatientAdmitted, PatientTransferred
from schemas.observations import VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW
from schemas.vocabulary import VitalParameter
from services.cleaning.app import build as build_cleaning
from services.cleaning.config import CleaningSettings
from services.common.embedded import free_port
from services.ingest.config import IngestSettings
from services.ingest.guards import pseudonymise
from tests.integration.ingest_fixtures import (
    AUTH,
    CR,
    FS,
    KEY,
    PSEUDONYM_KEY,
    VT,
    MllpClient,
    adt,
    fhir_observation,
    oru,
    running_ingest,
    segments,
)
from tests.support import RunningStage, collect


def pseudonym(mrn: str) -> str:
    return pseudonymise(mrn, PSEUDONYM_KEY.encode())


@pytest.fixture
async def settings(settings_factory) -> IngestSettings:
    return await settings_factory(
        IngestSettings,
        http_port=free_port(),
        mllp_port=free_port(),
        api_keys={"ehr": KEY},
        pseudonym_key=PSEUDONYM_KEY,
        broker_timeout_seconds=3.0,
    )


async def raw_events_until(kafka_url: str, settings, marker_mrn: str) -> list[Any]:
    """Everything on events.raw up to and including the marker patient's event."""
    marker = pseudonym(marker_mrn)
    return await collect(
        kafka_url, settings, EVENTS_RAW, lambda events: any(e.patient_id == marker for e in events)
    )


async def test_hl7_over_mllp_is_acknowledged_after_the_write_and_duplicates_are_absorbed(
    settings, kafka
) -> None:
    admit = adt("A01", "MSG0001", "MRN-100", "WARD-A", "WARD-A-07")
    transfer = adt("A02", "MSG0002", "MRN-100", "HDU", "HDU-01", prior="WARD-A")
    async with running_ingest(settings):
        client = await MllpClient.connect(settings.mllp_port)
        try:
            first = await client.send(admit)
            again = await client.send(admit)  # a resend after a lost ACK
            moved = await client.send(transfer)
            await client.send(adt("A01", "MSG-MARK", "MRN-MARK", "WARD-B"))
        finally:
            await client.close()
    assert segments(first)["MSA"][1:3] == ["AA", "MSG0001"]
    assert again == first, "a repeated control id gets the same answer"
    assert segments(moved)["MSA"][1] == "AA"

    events = await raw_events_until(kafka.url, settings, "MRN-MARK")
    admitted = [
        e for e in events if isinstance(e, PatientAdmitted) and e.patient_id == pseudonym("MRN-100")
    ]
    assert len(admitted) == 1, "the resend produced no second record"
    assert (admitted[0].ward, admitted[0].bed, admitted[0].source) == ("WARD-A", "WARD-A-07", "ehr")
    (moved_event,) = [e for e in events if isinstance(e, PatientTransferred)]
    assert (moved_event.from_ward, moved_event.ward, moved_event.bed) == ("WARD-A", "HDU", "HDU-01")
    text = " ".join(e.model_dump_json() for e in events)
    for identifier in ("MRN-100", "DOE", "JANE", "HIGH ST", "496 0999"):
        assert identifier not in text, "no direct identifier travels past ingest"


def framed(*segments_: str) -> bytes:
    return VT + "\r".join(segments_).encode() + FS + CR


MSH = "MSH|^~\\&|EPIC|MAINHOSP|W|W|20260101"
PID = "PID|1||M^^^H^MR"
MALFORMED = [
    (framed("PID|1||X", f"{MSH}||ADT^A01|1|P|2.5"), "AR", "segment before MSH"),
    (framed("MSH|^~|A|B|C|D|20260101||ADT^A01|2|P|2.5", PID), "AR", "bad encoding characters"),
    (b"MSH|^~\\&|no start block" + FS + CR, "AR", "frame without VT"),
    (
        framed(f"{MSH}||ADT^A01^ADT_A01|3|P|2.5", "EVN|A01|20260101", "PV1|1|I|WARD-A"),
        "AE",
        "no PID",
    ),
    (framed(f"{MSH}||ADT^Z99^ADT_A01|4|P|2.5", PID, "PV1|1|I|WARD-A"), "AR", "unsupported trigger"),
    (
        framed(f"{MSH}||ORU^R01|5|P|2.5", PID, "OBX|1|NM|8867-4^^LN||fast|/min|||||F"),
        "AE",
        "heart rate not a number",
    ),
    (
        framed("MSH|^~\\&|EPIC|MAINHOSP|W|W|2026-01-01||ADT^A01^ADT_A01|6|P|2.5", PID, "PV1|1|I|W"),
        "AE",
        "timestamp not HL7",
    ),
    (VT + b"\xff\xfe MSH garbage" + FS + CR, "AR", "not UTF-8"),
]


@pytest.mark.parametrize(("frame", "code", "why"), MALFORMED, ids=[m[2] for m in MALFORMED])
async def test_malformed_hl7_is_refused_with_err_and_the_connection_stays_usable(
    settings, kafka, frame: bytes, code: str, why: str
) -> None:
    marker = f"MRN-{uuid.uuid4().hex[:8]}"
    async with running_ingest(settings):
        client = await MllpClient.connect(settings.mllp_port)
        try:
            refused = await client.send_raw(frame)
            after = await client.send(adt("A01", "MSG-OK", marker, "WARD-B"))
        finally:
            await client.close()
    assert segments(refused)["MSA"][1] == code, why
    assert "ERR" in segments(refused), "an ERR segment says what and where"
    assert segments(after)["MSA"][1] == "AA", "the connection stays usable"
    events = await raw_events_until(kafka.url, settings, marker)
    assert [e.patient_id for e in events] == [pseudonym(marker)], (
        "nothing malformed reached events.raw"
    )


async def test_a_truncated_frame_writes_nothing(settings, kafka) -> None:
    async with running_ingest(settings):
        cut = await MllpClient.connect(settings.mllp_port)
        cut.writer.write(VT + adt("A01", "CUT1", "MRN-CUT", "WARD-A").encode()[:60])
        await cut.writer.drain()
        await cut.close()
        client = await MllpClient.connect(settings.mllp_port)
        try:
            assert (
                segments(await client.send(adt("A01", "M2", "MRN-AFTER", "WARD-A")))["MSA"][1]
                == "AA"
            )
        finally:
            await client.close()
    events = await raw_events_until(kafka.url, settings, "MRN-AFTER")
    assert [e.patient_id for e in events] == [pseudonym("MRN-AFTER")]


async def test_an_hl7_batch_yields_one_event_per_message(settings, kafka) -> None:
    messages = [adt("A01", f"B{i}", f"MRN-B{i}", "WARD-A") for i in range(3)]
    batch = "\r".join(
        ["FHS|^~\\&|EPIC|MAINHOSP", "BHS|^~\\&|EPIC|MAINHOSP", *messages, "BTS|3", "FTS|1"]
    )
    async with running_ingest(settings):
        client = await MllpClient.connect(settings.mllp_port)
        try:
            reply = await client.send(batch)
        finally:
            await client.close()
    assert reply.count("MSA|AA|") == 3
    events = await raw_events_until(kafka.url, settings, "MRN-B2")
    assert sorted(e.patient_id for e in events) == sorted(pseudonym(f"MRN-B{i}") for i in range(3))


async def test_hl7_over_http_oru_becomes_vital_signs(settings, kafka) -> None:
    message = oru(
        "ORU1",
        "MRN-7",
        [("8867-4", "118", "/min"), ("9279-1", "24", "/min"), ("8310-5", "101.3", "[degF]")],
    )
    async with running_ingest(settings) as base, httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/hl7",
            content=message.encode(),
            headers={**AUTH, "Content-Type": "application/hl7-v2"},
        )
        unauthenticated = await client.post(f"{base}/v1/hl7", content=message.encode())
    assert response.status_code == 200
    assert segments(response.text)["MSA"][1] == "AA"
    assert unauthenticated.status_code == 401
    (event,) = await raw_events_until(kafka.url, settings, "MRN-7")
    assert isinstance(event, VitalSignsObserved)
    measured = {(m.parameter.value, m.value, m.unit, m.loinc) for m in event.measurements}
    assert measured == {
        ("heart_rate", 118.0, "/min", "8867-4"),
        ("respiratory_rate", 24.0, "/min", "9279-1"),
        ("temperature", 101.3, "[degF]", "8310-5"),
    }


async def test_fhir_observations_and_bundles(settings, kafka) -> None:
    heart = fhir_observation("MRN-F1", "8867-4", 97, "/min")
    retracted = fhir_observation("MRN-F1", "8867-4", 250, "/min", status="entered-in-error")
    missing_subject = {k: v for k, v in heart.items() if k != "subject"}
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": fhir_observation("MRN-F2", "9279-1", 18, "/min"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"resource": missing_subject, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    batch = {**transaction, "type": "batch"}
    async with running_ingest(settings) as base, httpx.AsyncClient() as client:
        created = await client.post(f"{base}/fhir/Observation", json=heart, headers=AUTH)
        ignored = await client.post(f"{base}/fhir/Observation", json=retracted, headers=AUTH)
        refused = await client.post(f"{base}/fhir/Observation", json=missing_subject, headers=AUTH)
        all_or_nothing = await client.post(f"{base}/fhir", json=transaction, headers=AUTH)
        entries = await client.post(f"{base}/fhir", json=batch, headers=AUTH)
        marker = await client.post(
            f"{base}/fhir/Observation",
            json=fhir_observation("MRN-FMARK", "8867-4", 70, "/min"),
            headers=AUTH,
        )
    assert created.status_code == 201 and created.json()["resourceType"] == "OperationOutcome"
    assert ignored.status_code == 200
    assert refused.status_code == 422
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["Observation.subject"]
    assert all_or_nothing.status_code == 422
    assert entries.status_code == 200
    statuses = [entry["response"]["status"] for entry in entries.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("422")
    assert marker.status_code == 201

    events = await raw_events_until(kafka.url, settings, "MRN-FMARK")
    by_patient = [e.patient_id for e in events]
    assert by_patient.count(pseudonym("MRN-F1")) == 1, "entered-in-error produced nothing"
    assert by_patient.count(pseudonym("MRN-F2")) == 1, "only the batch wrote MRN-F2"
    assert all(isinstance(e, VitalSignsObserved) for e in events)
    assert "Jane Doe" not in " ".join(e.model_dump_json() for e in events)


LABORATORY = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory",
            }
        ]
    }
]


async def test_a_fhir_laboratory_result_reaches_events_clean_in_canonical_units(
    settings, settings_factory, kafka
) -> None:
    cleaning = await settings_factory(CleaningSettings)
    white_cells = fhir_observation("MRN-LAB", "6690-2", 14.2, "10*3/uL", category=LABORATORY)
    blood_gas = fhir_observation("MRN-LAB", "2019-8", 4.0, "kPa", category=LABORATORY)
    async with RunningStage(build_cleaning(cleaning)):
        async with running_ingest(settings) as base, httpx.AsyncClient() as client:
            first = await client.post(f"{base}/fhir/Observation", json=white_cells, headers=AUTH)
            second = await client.post(f"{base}/fhir/Observation", json=blood_gas, headers=AUTH)
        assert (first.status_code, second.status_code) == (201, 201)
        patient = pseudonym("MRN-LAB")
        clean = await collect(
            kafka.url,
            cleaning,
            EVENTS_CLEAN,
            lambda events: sum(e.patient_id == patient for e in events) >= 2,
        )
    recorded = [e for e in clean if isinstance(e, VitalSignsRecorded) and e.patient_id == patient]
    assert [e.vitals.model_dump(exclude_none=True) for e in recorded] == [
        {"white_cell_count_10e9_per_l": 14.2},  # 10^3/uL is 10^9/L
        {"paco2_mmhg": 30.0},  # 4.0 kPa
    ]
    origins = [(o.parameter, o.loinc, o.original_value, o.original_unit) for e in recorded
               for o in e.origins]  # fmt: skip
    assert origins == [
        (VitalParameter.WHITE_CELL_COUNT, "6690-2", 14.2, "10*3/uL"),
        (VitalParameter.PACO2, "2019-8", 4.0, "kPa"),
    ]
    assert all(e.artifacts == [] for e in recorded)


async def test_idempotency_key_replays_the_answer_and_writes_once(settings, kafka) -> None:
    event = {
        "kind": "PatientAdmitted",
        "occurred_at": "2026-11-28T10:00:00Z",
        "patient_id": "MRN-I",
        "ward": "WARD-A",
    }
    async with running_ingest(settings) as base, httpx.AsyncClient() as client:
        headers = {**AUTH, "Idempotency-Key": "admit-MRN-I-1"}
        first = await client.post(f"{base}/v1/events", json=event, headers=headers)
        second = await client.post(f"{base}/v1/events", json=event, headers=headers)
        reused = await client.post(
            f"{base}/v1/events", json={**event, "ward": "WARD-B"}, headers=headers
        )
        await client.post(
            f"{base}/v1/events", json={**event, "patient_id": "MRN-IMARK"}, headers=AUTH
        )
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert reused.status_code == 422 and reused.json()["reason"] == "idempotency_key_reused"
    events = await raw_events_until(kafka.url, settings, "MRN-IMARK")
    assert [e.patient_id for e in events].count(pseudonym("MRN-I")) == 1


async def test_sources_may_send_only_their_kinds_and_rates(
    settings_factory, kafka, tmp_path
) -> None:
    from services.ingest.sources import key_digest

    sources = tmp_path / "sources.toml"
    sources.write_text(
        f"""
[[sources]]
name = "monitor-gw"
key_sha256 = "{key_digest("monitor-key-0123456789")}"
kinds = ["VitalSignsObserved"]
rate_per_second = 0.01
burst = 2
"""
    )
    settings = await settings_factory(
        IngestSettings,
        http_port=free_port(),
        mllp_port=0,
        sources_file=str(sources),
        pseudonym_key=PSEUDONYM_KEY,
    )
    monitor = {"Authorization": "Bearer monitor-key-0123456789"}
    vitals = {
        "kind": "VitalSignsObserved",
        "occurred_at": "2026-11-28T10:00:00Z",
        "patient_id": "MRN-R",
        "measurements": [{"parameter": "heart_rate", "value": 80, "unit": "/min"}],
    }
    admit = {
        "kind": "PatientDischarged",
        "occurred_at": "2026-11-28T10:00:00Z",
        "patient_id": "MRN-R",
        "ward": "WARD-A",
    }
    async with running_ingest(settings) as base, httpx.AsyncClient() as client:
        answers = [
            (await client.post(f"{base}/v1/events", json=vitals, headers=monitor)).status_code
            for _ in range(3)
        ]
        limited = await client.post(f"{base}/v1/events", json=vitals, headers=monitor)
        forbidden = await client.post(f"{base}/v1/events", json=admit, headers=monitor)
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"][0]["field"] == "kind"
    assert answers == [202, 202, 429], "a burst of 2, then one token per 100 s"
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 100


async def test_mllp_over_tls_when_configured(settings_factory, kafka, tmp_path) -> None:
    import asyncio
    import shutil
    import ssl
    import subprocess

    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    settings = await settings_factory(
        IngestSettings,
        http_port=free_port(),
        mllp_port=free_port(),
        mllp_tls_cert=str(cert),
        mllp_tls_key=str(key),
        api_keys={"ehr": KEY},
        pseudonym_key=PSEUDONYM_KEY,
    )
    trust = ssl.create_default_context(cafile=str(cert))
    async with running_ingest(settings):
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.mllp_port, ssl=trust)
        client = MllpClient(reader, writer)
        try:
            reply = await client.send(adt("A01", "TLS1", "MRN-TLS", "WARD-A"))
        finally:
            await client.close()
    assert segments(reply)["MSA"][1] == "AA"
    (event,) = await raw_events_until(kafka.url, settings, "MRN-TLS")
    assert isinstance(event, PatientAdmitted)
