"""Fusion reads events.clean with the contract's events, vital signs without `origins`: the
reader's fields stay the contract's, and the rules give the same record either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

import orjson
import pytest
from pydantic import ValidationError

from schemas.admissions import PatientAdmitted
from schemas.codec import decode, encode
from schemas.observations import VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN
from services.cleaning.app import Cleaner
from services.cleaning.config import CleaningSettings
from services.cleaning.domain import CleaningRejection
from services.cleaning.recorded import encode_document
from services.fusion.domain import FusionPolicy, PatientRecord, handle
from services.fusion.reader import RecordedVitals, read_clean_event
from services.simulator.domain import Hospital, HospitalConfig

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def test_the_reader_has_every_field_of_the_contract_but_origins() -> None:
    contract = VitalSignsRecorded.model_fields
    reader = RecordedVitals.model_fields
    assert reader.keys() == contract.keys() - {"origins"}
    for name, field in reader.items():
        assert repr(field) == repr(contract[name]), name  # type, default and constraints


def clean_records(readings: int) -> list[bytes]:
    """What cleaning writes to events.clean for the simulator's monitor readings."""
    config = HospitalConfig(initial_patients=20, arrivals_per_hour=0.0, scheduled_vitals=False)
    hospital = Hospital(config, Random(7), START)
    hospital.step(START)
    cleaning = Cleaner(CleaningSettings()).domain
    records = []
    for step in range(readings // 20):
        at = START + timedelta(minutes=step)
        for payload in hospital.readings(at, 20):
            stamped = {**payload, "recorded_at": at, "source": "monitors"}
            try:
                cleaned = cleaning.clean(VitalSignsObserved.model_validate(stamped), at)
            except CleaningRejection:
                continue  # an impossible value (a faulty monitor): dead-lettered
            if cleaned.recorded is not None:
                records.append(encode_document(cleaned.recorded))
    return records


def test_vital_signs_read_as_the_contract_has_them_but_origins() -> None:
    records = clean_records(200)
    assert len(records) > 150 and all(b'"origins":[{' in value for value in records)
    for value in records:
        read = read_clean_event(EVENTS_CLEAN, value)
        whole = decode(EVENTS_CLEAN, value)
        assert isinstance(read, RecordedVitals)
        assert read.model_dump() == whole.model_dump(exclude={"origins"})


def test_fusion_builds_the_same_record_from_the_reader_and_from_the_contract() -> None:
    policy = FusionPolicy()
    read_record: PatientRecord | None = None
    whole_record: PatientRecord | None = None
    now = START + timedelta(hours=1)
    records = clean_records(400)
    patient = decode(EVENTS_CLEAN, records[0]).patient_id
    for value in records:
        read, whole = read_clean_event(EVENTS_CLEAN, value), decode(EVENTS_CLEAN, value)
        if whole.patient_id != patient:
            continue
        a = handle(read_record, read, now=now, partition=0, policy=policy)
        b = handle(whole_record, whole, now=now, partition=0, policy=policy)
        assert a.snapshot == b.snapshot
        read_record, whole_record = a.record, b.record
    assert read_record is not None and read_record.version > 1
    assert read_record.model_dump_json() == whole_record.model_dump_json()


def test_other_events_are_read_as_the_contract_has_them() -> None:
    admitted = PatientAdmitted(
        event_id="6f1c7f0e-8f55-4f55-9d59-3f0f6b1e4a10",
        occurred_at=START,
        recorded_at=START,
        source="ehr",
        patient_id="P1",
        encounter_id="E1",
        ward="W1",
    )
    assert read_clean_event(EVENTS_CLEAN, encode(admitted)) == admitted


def test_a_bad_record_is_refused_naming_the_field() -> None:
    value = orjson.loads(clean_records(20)[0])
    value["vitals"]["heart_rate_bpm"] = "fast"
    with pytest.raises(ValidationError, match="heart_rate_bpm"):
        read_clean_event(EVENTS_CLEAN, orjson.dumps(value))
