"""A day of dirty monitor data through ingest, cleaning and fusion as separate processes.

Four patients, a reading every ten minutes for 24 hours, with probe-offs, arterial-line zeroing,
impossible values, resends, unit mixes (Fahrenheit, kPa), shuffled arrival and reordered ADT with a
cancel. Afterwards: no artifact is used, no late value overwrote a newer one, every impossible
event sits in the dead-letter topic with its reason, and the counts add up.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.patients import PatientStateUpdated
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, PATIENTS_STATE
from services.common.embedded import free_port
from services.ingest.guards import pseudonymise
from tests.integration.ingest_fixtures import KEY, PSEUDONYM_KEY
from tests.support import ServiceProcess, collect

pytestmark = pytest.mark.e2e
PATIENTS = [f"MRN-DAY-{n}" for n in range(4)]
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=24)
READINGS_PER_PATIENT = 144  # every 10 minutes for a day
LONG_AGES = json.dumps(
    dict.fromkeys(
        ["heart_rate_bpm", "respiratory_rate_per_min", "spo2_percent", "systolic_bp_mmhg",
         "diastolic_bp_mmhg", "temperature_celsius", "oxygen_flow_l_per_min", "fio2_percent",
         "supplemental_oxygen", "consciousness"],
        172_800,
    )
)  # fmt: skip  # staleness is covered by unit tests; here every reading stays usable


def reading(mrn: str, index: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, float]]:
    """One monitor message and the canonical values it should yield (empty when it must not be
    used at all); faults are injected by position so the test knows each one. The last reading
    of each patient carries a fault, so the final state shows whether it was handled."""
    at = START + timedelta(minutes=10 * index)
    hr, rr, spo2 = 70 + rng.randint(-8, 8), 16 + rng.randint(-2, 2), 96 + rng.randint(-2, 2)
    sbp, dbp = 118 + rng.randint(-10, 10), 76 + rng.randint(-6, 6)
    temp = 36.8 + rng.randint(-3, 3) / 10
    last = index == READINGS_PER_PATIENT - 1
    measurements = [
        {"parameter": "heart_rate", "value": hr, "unit": "/min", "loinc": "8867-4"},
        {"parameter": "respiratory_rate", "value": rr, "unit": "/min"},
        {"parameter": "spo2", "value": spo2, "unit": "%"},
        {"parameter": "systolic_bp", "value": sbp, "unit": "mm[Hg]"},
        {"parameter": "diastolic_bp", "value": dbp, "unit": "mm[Hg]"},
        {"parameter": "temperature", "value": temp, "unit": "Cel"},
    ]
    expected = {
        "heart_rate_bpm": hr,
        "respiratory_rate_per_min": rr,
        "spo2_percent": spo2,
        "systolic_bp_mmhg": sbp,
        "diastolic_bp_mmhg": dbp,
        "temperature_celsius": temp,
    }
    if index % 7 == 3 or (last and mrn.endswith("2")):  # vendor B sends Fahrenheit
        fahrenheit = round(temp * 9 / 5 + 32, 2)
        measurements[5] = {"parameter": "temperature", "value": fahrenheit, "unit": "[degF]"}
    if index % 11 == 5 or (last and mrn.endswith("3")):  # and kPa for blood pressure
        kpa = round(sbp / 7.500615758, 3)
        measurements[3] = {"parameter": "systolic_bp", "value": kpa, "unit": "kPa"}
    if index % 13 == 6 or (last and mrn.endswith("0")):  # probe off: HR and SpO2 read 0
        measurements[0]["value"], measurements[2]["value"] = 0, 0
        del expected["heart_rate_bpm"], expected["spo2_percent"]
    if index % 17 == 8:  # arterial line being zeroed
        measurements[3] = {"parameter": "systolic_bp", "value": 0, "unit": "mm[Hg]"}
        measurements[4] = {"parameter": "diastolic_bp", "value": 0, "unit": "mm[Hg]"}
        del expected["systolic_bp_mmhg"], expected["diastolic_bp_mmhg"]
    if index % 19 == 9 or (last and mrn.endswith("1")):  # impossible: the event is refused
        measurements[0]["value"] = 400
        expected = {}
    event = {
        "kind": "VitalSignsObserved",
        "event_id": str(uuid4()),
        "occurred_at": at.isoformat(),
        "patient_id": mrn,
        "device_id": f"MON-{mrn[-1]}",
        "measurements": measurements,
    }
    return event, expected


def adt_events(mrn: str) -> list[dict[str, Any]]:
    """Admit to ED, transfer to WARD-A, transfer to HDU (then cancelled), final state: WARD-A."""

    def at(hours: float) -> str:
        return (START + timedelta(hours=hours)).isoformat()

    base = {"patient_id": mrn}
    return [
        {**base, "kind": "PatientAdmitted", "occurred_at": at(0), "ward": "ED", "bed": "ED-01"},
        {**base, "kind": "PatientTransferred", "occurred_at": at(2), "from_ward": "ED",
         "ward": "WARD-A", "bed": "WARD-A-03"},
        {**base, "kind": "PatientTransferred", "occurred_at": at(10), "from_ward": "WARD-A",
         "ward": "HDU", "bed": "HDU-02"},
        {**base, "kind": "TransferCancelled", "occurred_at": at(11), "ward": "WARD-A",
         "bed": "WARD-A-03", "cancelled_ward": "HDU", "cancelled_bed": "HDU-02"},
    ]  # fmt: skip


def metric_total(text: str, name: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("stage", "cleaning") == "cleaning"
    )


async def test_a_day_of_dirty_data_yields_states_a_clinician_can_trust(
    settings_factory, kafka, unique: str, tmp_path: Path
) -> None:
    settings = await settings_factory()
    rng = random.Random(2026)
    messages, expected_latest, impossible = [], {}, set()
    for mrn in PATIENTS:
        latest: dict[str, tuple[datetime, float]] = {}
        for index in range(READINGS_PER_PATIENT):
            event, values = reading(mrn, index, rng)
            messages.append(event)
            if not values:
                impossible.add(event["event_id"])
            at = datetime.fromisoformat(event["occurred_at"])
            for name, value in values.items():
                if name not in latest or at > latest[name][0]:
                    latest[name] = (at, float(value))
            if index % 23 == 10:  # the gateway resends the same reading under a new id
                messages.append({**event, "event_id": str(uuid4())})
        expected_latest[pseudonymise(mrn, PSEUDONYM_KEY.encode())] = {
            k: v for k, (_, v) in latest.items()
        }
        messages += adt_events(mrn)
    random.Random(11).shuffle(messages)  # late and out-of-order arrival, ADT included
    resent_as_is = messages[:20]  # an exact resend (same event ids): absorbed at ingest

    common = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "WARDFLOW_PARTITIONS": "2",
    }
    http_port = free_port()
    ingest_env = common | {"WARDFLOW_HTTP_PORT": str(http_port), "WARDFLOW_MLLP_PORT": "0",
                           "WARDFLOW_API_KEYS": json.dumps({"gateway": KEY}),
                           "WARDFLOW_PSEUDONYM_KEY": PSEUDONYM_KEY}  # fmt: skip
    cleaning_env = common | {"WARDFLOW_CONSUMER_GROUP": f"g{unique}-cleaning"}
    fusion_env = common | {
        "WARDFLOW_CONSUMER_GROUP": f"g{unique}-fusion",
        "WARDFLOW_MIN_SNAPSHOT_INTERVAL_SECONDS": "1",
        "WARDFLOW_FLUSH_CHECK_INTERVAL_SECONDS": "0.25",
        "WARDFLOW_MAX_AGE_SECONDS": LONG_AGES,
    }
    cleaning_metrics = free_port()
    async with (
        ServiceProcess("ingest", ingest_env, tmp_path / "ingest.log", free_port()),
        ServiceProcess("cleaning", cleaning_env, tmp_path / "cleaning.log", cleaning_metrics),
        ServiceProcess("fusion", fusion_env, tmp_path / "fusion.log", free_port()),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client,
    ):
        accepted: set[str] = set()
        for start in range(0, len(messages), 50):
            response = await client.post(
                "/v1/events", json={"events": messages[start : start + 50]},
                headers={"Authorization": f"Bearer {KEY}"},
            )  # fmt: skip
            assert response.status_code == 202, response.text
            accepted.update(response.json()["accepted"])
        again = await client.post("/v1/events", json={"events": resent_as_is},
                                  headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
        assert again.status_code == 202

        def final_states_match(states: list[PatientStateUpdated]) -> bool:
            last = {s.patient_id: s for s in states}
            return all(
                patient in last
                and _values(last[patient]) == pytest.approx(values, abs=0.02)
                and last[patient].ward == "WARD-A"
                for patient, values in expected_latest.items()
            )

        states = await collect(
            kafka.url, settings, PATIENTS_STATE, final_states_match, timeout_seconds=120
        )
        letters = await collect(
            kafka.url, settings, EVENTS_DLQ, lambda e: len(e) >= len(impossible), timeout_seconds=60
        )
        async with httpx.AsyncClient() as metrics_client:
            page = (await metrics_client.get(f"http://127.0.0.1:{cleaning_metrics}/metrics")).text
        clean = await collect(
            kafka.url, settings, EVENTS_CLEAN,
            lambda e: len(e) >= metric_total(page, "wardflow_events_out_total") - len(letters),
        )  # fmt: skip

    # No artifact was used, and no late value overwrote a newer one: the final readings are
    # exactly the latest valid values of the input (checked in final_states_match above).
    last = {s.patient_id: s for s in states}
    for state in last.values():
        assert state.readings.heart_rate_bpm is not None
        assert state.readings.heart_rate_bpm.value > 0
        assert state.encounter_status == "in_progress" and state.bed == "WARD-A-03"
    # Every impossible event is dead-lettered with its reason, nothing else is.
    assert {json.loads(letter.original_value)["event_id"] for letter in letters} == impossible
    assert {letter.reason for letter in letters} == {"impossible_value"}
    # The counts add up: what ingest wrote = what cleaning took in = clean + dead letters +
    # dropped resends of the same reading.
    assert len(accepted) == len(messages)
    taken_in = metric_total(page, "wardflow_events_in_total")
    dropped = metric_total(page, "wardflow_duplicates_dropped_total")
    resends = sum(
        1 for m in messages if m["kind"] == "VitalSignsObserved"
    ) - READINGS_PER_PATIENT * len(PATIENTS)
    assert taken_in == len(messages), "the exact resend was absorbed at ingest"
    assert dropped == resends
    assert len(clean) == taken_in - len(letters) - dropped
    assert sum(1 for e in clean if getattr(e, "artifacts", None)) > 0, "artifacts were flagged"


def _values(state: PatientStateUpdated) -> dict[str, float]:
    return {
        name: reading.value
        for name, reading in state.readings
        if reading is not None and hasattr(reading, "value") and isinstance(reading.value, float)
    }
