"""Cleaning writes its VitalSignsRecorded records without the model (recorded.py): the records
must be exactly what the contract model writes, here for the simulator's readings (the rules'
edge cases are checked the same way by test_cleaning_rules.py's CheckedCleaner)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.codec import decode, encode
from schemas.observations import VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW
from services.cleaning.app import Cleaner
from services.cleaning.config import CleaningSettings
from services.cleaning.domain import CleaningRejection
from services.cleaning.recorded import encode_document
from services.common.handlers import Encoded, Rejected
from services.simulator.domain import Hospital, HospitalConfig

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def simulated_observations(count: int) -> list[VitalSignsObserved]:
    """Readings of a simulated ward over time (some deteriorating, some faulty monitors)."""
    config = HospitalConfig(initial_patients=60, arrivals_per_hour=0.0, scheduled_vitals=False)
    hospital = Hospital(config, random.Random(7), START)
    hospital.step(START)
    events = []
    for index in range(count // 60):
        at = START + timedelta(seconds=30 * index)
        for payload in hospital.readings(at, 60):
            stamped = {**payload, "recorded_at": at, "source": "monitors"}
            events.append(VitalSignsObserved.model_validate(stamped))
    return events


def test_every_record_is_what_the_contract_model_writes() -> None:
    cleaner = Cleaner(CleaningSettings(), clock=lambda: START + timedelta(hours=1))
    written = 0
    for event in simulated_observations(3_000):
        try:
            cleaned = cleaner.domain.clean(event, START + timedelta(hours=1))
        except CleaningRejection:
            continue  # an impossible value (a faulty monitor): dead-lettered, not written
        if cleaned.recorded is None:
            continue
        model = VitalSignsRecorded.model_validate(cleaned.recorded)
        assert encode_document(cleaned.recorded) == encode(model)
        written += 1
    assert written > 2_500  # artifacts, local codes and units: case by case in the rules tests


async def test_the_stage_writes_the_record_keyed_by_patient() -> None:
    at = START + timedelta(minutes=5)
    cleaner = Cleaner(CleaningSettings(), clock=lambda: at)
    for event in simulated_observations(120):
        try:
            (output,) = await cleaner(EVENTS_RAW, event)
        except Rejected:
            continue  # an impossible value: dead-lettered, not written
        assert isinstance(output, Encoded) and output.spec is EVENTS_CLEAN
        assert output.key == event.patient_id.encode()
        record = decode(EVENTS_CLEAN, output.value)
        assert isinstance(record, VitalSignsRecorded)
        assert (record.event_id, record.patient_id) == (event.event_id, event.patient_id)
