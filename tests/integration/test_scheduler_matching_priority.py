"""Ward queues by acuity with aging, and critical-care beds matched to the patient: the scheduler
handler against the real embedded Redis.

Ward waits use the same credits as critical-care requests (services/scheduler/policy.toml): a
high-band patient with NEWS2 7 is credited 275 minutes, a medium-band one with 5, 85 minutes;
no assessment, no credit. The critical-care layout has a general ICU with two ventilator beds
and a cardiothoracic ICU on another site, so needs, specialty and site all choose the bed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.assessments import AssessmentIssued, CriticalCareBedRequested
from schemas.beds import (
    BedAssigned,
    BedRequested,
    BedRequestWaiting,
    BedReserved,
    BedStatusReported,
)
from schemas.vocabulary import Band, BedStatus
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.store import RedisBedStore
from tests.integration.test_scheduler_priority import NOW, call, envelope, of
from tests.support import metric_value

LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ED", "level_of_care": "emergency", "beds": 4, "site": "north"},
            {"id": "W1", "level_of_care": "general", "beds": 1, "site": "north"},
            {
                "id": "SURG",
                "level_of_care": "general",
                "specialty": "general surgery",
                "site": "north",
                "beds": 4,
                "capabilities": {"SURG-04": ["isolation"]},
            },
            {
                "id": "CARD",
                "level_of_care": "general",
                "specialty": "cardiothoracic surgery",
                "site": "south",
                "beds": 4,
            },
            {
                "id": "ICU",
                "level_of_care": "icu",
                "site": "north",
                "beds": 4,
                "capabilities": {"ICU-03": ["ventilator"], "ICU-04": ["ventilator"]},
            },
            {
                "id": "CICU",
                "level_of_care": "icu",
                "specialty": "cardiothoracic surgery",
                "site": "south",
                "beds": 2,
            },
        ]
    }
)


@pytest.fixture
async def scheduler(redis: Redis, unique: str) -> Scheduler:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    return Scheduler(store, LAYOUT)


def assessed(patient: str, ward: str, band: Band | None, aggregate: int) -> AssessmentIssued:
    return AssessmentIssued(
        patient_id=patient,
        ward=ward,
        aggregate=aggregate,
        band=band,
        complete=band is not None,
        sub_scores=[],
        clinical_response="test",
        state_version=1,
        cause_recorded_at=NOW,
        **envelope(),
    )


def transfer(patient: str, to: str, at: datetime, **fields: Any) -> PatientTransferred:
    return PatientTransferred(patient_id=patient, from_ward="ED", ward=to, **fields, **envelope(at))


async def in_ed(scheduler: Scheduler, patient: str, **fields: Any) -> None:
    admitted = PatientAdmitted(patient_id=patient, ward="ED", **fields, **envelope())
    assert of(BedAssigned, await call(scheduler, admitted))


async def free_w1(scheduler: Scheduler) -> str:
    """The occupant of W1's one bed leaves and housekeeping readies it: who gets it (occupied,
    or reserved for a bed manager's request)."""
    await call(scheduler, PatientDischarged(patient_id="X", ward="W1", **envelope()))
    report = {"ward": "W1", "bed": "W1-01"}
    await call(scheduler, BedStatusReported(status=BedStatus.CLEANING, **report, **envelope()))
    outputs = await call(
        scheduler, BedStatusReported(status=BedStatus.AVAILABLE, **report, **envelope())
    )
    (given,) = [*of(BedAssigned, outputs), *of(BedReserved, outputs)]
    return str(given.patient_id)


async def fill_w1(scheduler: Scheduler) -> None:
    admitted = PatientAdmitted(patient_id="X", ward="W1", **envelope())
    assert of(BedAssigned, await call(scheduler, admitted))


# --- Ward queues: acuity first, then waiting time, with aging -------------------------------


async def test_a_sicker_patient_from_ed_gets_the_ward_bed_before_an_earlier_one(
    scheduler: Scheduler,
) -> None:
    await fill_w1(scheduler)
    await in_ed(scheduler, "EARLY")
    await in_ed(scheduler, "SICK")
    await call(scheduler, assessed("SICK", "ED", Band.HIGH, 7))  # known in ED, goes with them
    waits = [
        await call(scheduler, transfer("EARLY", "W1", NOW - timedelta(hours=2))),
        await call(scheduler, transfer("SICK", "W1", NOW - timedelta(hours=1))),
    ]
    assert all(of(BedRequestWaiting, outputs) for outputs in waits)
    assert await free_w1(scheduler) == "SICK"


async def test_a_patient_who_waited_longer_than_the_credit_goes_first(
    scheduler: Scheduler,
) -> None:
    await fill_w1(scheduler)
    await in_ed(scheduler, "OLD")
    await in_ed(scheduler, "SICK")
    await call(scheduler, assessed("SICK", "ED", Band.HIGH, 7))  # 275 min of credit
    await call(scheduler, transfer("OLD", "W1", NOW - timedelta(minutes=277)))
    await call(scheduler, transfer("SICK", "W1", NOW - timedelta(minutes=1)))
    assert await free_w1(scheduler) == "OLD"  # aging: nobody waits forever


async def test_without_an_assessment_the_ward_queue_is_first_come_first_served(
    scheduler: Scheduler,
) -> None:
    await fill_w1(scheduler)
    for patient in ("LATER", "EARLIER"):
        await in_ed(scheduler, patient)
    await call(scheduler, transfer("LATER", "W1", NOW - timedelta(minutes=1)))
    await call(scheduler, transfer("EARLIER", "W1", NOW - timedelta(minutes=2)))
    assert await free_w1(scheduler) == "EARLIER"


async def test_a_new_assessment_moves_a_waiting_patient_up_and_the_wait_is_labelled(
    scheduler: Scheduler,
) -> None:
    await fill_w1(scheduler)
    for patient in ("FIRST", "WORSENS"):
        await in_ed(scheduler, patient)
    await call(scheduler, transfer("FIRST", "W1", NOW - timedelta(minutes=30)))
    await call(scheduler, transfer("WORSENS", "W1", NOW - timedelta(minutes=10)))
    before = metric_value("wardflow_bed_wait_seconds_count", band="medium", origin="emergency")
    await call(scheduler, assessed("WORSENS", "W1", Band.MEDIUM, 5))  # 85 min of credit
    assert await free_w1(scheduler) == "WORSENS"
    after = metric_value("wardflow_bed_wait_seconds_count", band="medium", origin="emergency")
    assert after == before + 1
    # Their wait ran from the transfer request, not from when the credit moved them.
    profile = await scheduler.store.profile("W1", "WORSENS")
    assert profile is not None and profile["since"] == (NOW - timedelta(minutes=10)).timestamp()


async def test_an_incomplete_assessment_changes_no_place(scheduler: Scheduler) -> None:
    await fill_w1(scheduler)
    for patient in ("FIRST", "UNKNOWN"):
        await in_ed(scheduler, patient)
    await call(scheduler, transfer("FIRST", "W1", NOW - timedelta(minutes=30)))
    await call(scheduler, transfer("UNKNOWN", "W1", NOW - timedelta(minutes=10)))
    await call(scheduler, assessed("UNKNOWN", "W1", None, 6))  # missing data: no band
    assert await free_w1(scheduler) == "FIRST"


async def test_a_bed_managers_request_with_a_band_is_queued_by_it(scheduler: Scheduler) -> None:
    await fill_w1(scheduler)
    await in_ed(scheduler, "PLAIN")
    await call(scheduler, transfer("PLAIN", "W1", NOW - timedelta(minutes=50)))
    manual = BedRequested(
        patient_id="URGENT", ward="W1", band=Band.MEDIUM, requested_by="bed-office", **envelope()
    )
    assert of(BedRequestWaiting, await call(scheduler, manual))
    assert await free_w1(scheduler) == "URGENT"  # 85 min of credit > 50 min head start


async def test_leaving_the_ward_forgets_the_profile(scheduler: Scheduler) -> None:
    event = PatientAdmitted(
        patient_id="P", ward="SURG", sex="female", needs=["isolation"], **envelope()
    )
    (assigned,) = of(BedAssigned, await call(scheduler, event))
    assert assigned.bed == "SURG-04"  # the side room
    assert assigned.cost_estimate.per_day == Decimal("450.00") + Decimal("90.00")
    assert (await scheduler.store.profile("SURG", "P")) == {
        "needs": ["isolation"],
        "sex": "female",
        "since": NOW.timestamp(),
    }
    await call(scheduler, PatientDischarged(patient_id="P", ward="SURG", **envelope()))
    assert await scheduler.store.profile("SURG", "P") is None


# --- Critical care: needs, sex, specialty and site choose the bed ----------------------------


def icu_request(patient: str, ward: str, at: datetime = NOW) -> CriticalCareBedRequested:
    return CriticalCareBedRequested(
        patient_id=patient,
        ward=ward,
        level_of_care="icu",  # type: ignore[arg-type]
        band=Band.HIGH,
        aggregate=7,
        assessment_id=uuid4(),
        reasons=["news2"],
        rules_version="test",
        **envelope(at),
    )


async def admitted_to(scheduler: Scheduler, patient: str, ward: str, **fields: Any) -> None:
    event = PatientAdmitted(patient_id=patient, ward=ward, **fields, **envelope())
    assert of(BedAssigned, await call(scheduler, event))


def ventilation_request(patient: str, at: datetime = NOW) -> BedRequested:
    """A bed manager asks for an ICU bed with a ventilator for a surgical patient."""
    return BedRequested(
        patient_id=patient,
        level_of_care="icu",  # type: ignore[arg-type]
        from_ward="SURG",
        band=Band.HIGH,
        needs=["ventilator"],
        requested_by="outreach",
        **envelope(at),
    )


async def test_a_patient_who_needs_a_ventilator_gets_a_ventilator_bed_with_its_cost(
    scheduler: Scheduler,
) -> None:
    await admitted_to(scheduler, "VENT", "SURG")
    (reserved,) = of(BedReserved, await call(scheduler, ventilation_request("VENT")))
    assert (reserved.ward, reserved.bed) == ("ICU", "ICU-03")  # not ICU-01, the lowest free
    estimate = reserved.cost_estimate
    assert estimate.per_day == Decimal("2000.00") + Decimal("350.00")
    assert "plus ventilator at 350.00 GBP per day" in estimate.basis


async def test_a_need_no_bed_of_the_level_meets_waits_with_its_reason(
    scheduler: Scheduler,
) -> None:
    # Isolated on the ward (its side room): the ICU request keeps the need from the ward.
    await admitted_to(scheduler, "ISO", "SURG", needs=["isolation"])
    outputs = await call(scheduler, icu_request("ISO", "SURG"))
    assert not of(BedReserved, outputs)
    (waiting,) = of(BedRequestWaiting, outputs)
    assert waiting.reason == "no_matching_bed"  # ICU beds are free, none is a side room


async def test_a_request_that_fits_no_free_bed_does_not_block_the_queue(
    scheduler: Scheduler,
) -> None:
    # Both ventilator beds taken; the first in the queue needs one, the next does not.
    for patient in ("V1", "V2"):
        await admitted_to(scheduler, patient, "SURG")
        assert of(BedReserved, await call(scheduler, ventilation_request(patient)))
    for patient in ("V3", "PLAIN"):
        await admitted_to(scheduler, patient, "SURG")
    # Fill the plain ICU beds with walk-in admissions so the two requests queue.
    for patient in ("A", "B"):
        await admitted_to(scheduler, patient, "ICU")
    first = await call(scheduler, ventilation_request("V3", NOW - timedelta(minutes=5)))
    assert of(BedRequestWaiting, first)
    assert of(BedRequestWaiting, await call(scheduler, icu_request("PLAIN", "SURG")))
    # A plain bed frees: V3 is first in the queue but cannot use it; PLAIN gets it.
    await call(scheduler, PatientDischarged(patient_id="A", ward="ICU", **envelope()))
    report = {"ward": "ICU", "bed": "ICU-01"}
    await call(scheduler, BedStatusReported(status=BedStatus.CLEANING, **report, **envelope()))
    outputs = await call(
        scheduler, BedStatusReported(status=BedStatus.AVAILABLE, **report, **envelope())
    )
    (reserved,) = of(BedReserved, outputs)
    assert (reserved.patient_id, reserved.bed) == ("PLAIN", "ICU-01")
    assert await scheduler.store.critical_care_waiting("icu") == 1  # V3 still waits


async def test_a_specialty_unit_takes_its_own_patients_and_not_others(
    scheduler: Scheduler,
) -> None:
    await admitted_to(scheduler, "HEART", "CARD")
    (reserved,) = of(BedReserved, await call(scheduler, icu_request("HEART", "CARD")))
    assert reserved.ward == "CICU"  # its own specialty, on its own site
    # Fill the general ICU: a surgical patient then waits, though CICU has a free bed.
    for index in range(4):
        await admitted_to(scheduler, f"G{index}", "ICU")
    await admitted_to(scheduler, "GUT", "SURG")
    outputs = await call(scheduler, icu_request("GUT", "SURG"))
    (waiting,) = of(BedRequestWaiting, outputs)
    assert waiting.reason == "no_matching_bed"


async def test_a_patient_from_a_ward_without_a_unit_of_their_specialty_prefers_their_site(
    scheduler: Scheduler,
) -> None:
    # ED (north, no specialty): only the general ICU takes them (CICU is cardiothoracic).
    await in_ed(scheduler, "EDP")
    (reserved,) = of(BedReserved, await call(scheduler, icu_request("EDP", "ED")))
    assert reserved.ward == "ICU"
