"""The hospital simulator: flow of patients, housekeeping, physiology, reproducibility."""

from __future__ import annotations

import itertools
import random
import re
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from schemas.codec import decode_python
from schemas.topics import EVENTS_RAW
from schemas.vocabulary import Consciousness
from services.diagnosis import domain as rules
from services.simulator.app import (
    LoadPacer,
    SimulatorStats,
    dirty_beds,
    hospital_config,
    retry_after_seconds,
)
from services.simulator.config import SimulatorSettings
from services.simulator.domain import (
    ED,
    HDU,
    HIGH_BAND_SEVERITY,
    ICU,
    MEDIUM_BAND_SEVERITY,
    WARD_A,
    WARD_B,
    WARDS,
    Hospital,
    HospitalConfig,
    alert_crossings,
    white_cell_count,
)
from services.simulator.events import CompressedClock, Payload
from services.simulator.physiology import Baseline, Course, draw_baseline, observe

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DAY_MINUTES = 24 * 60
BASELINE = Baseline(75, 15, 97.5, 125, 80, 36.8)


def simulate(
    minutes: int,
    *,
    seed: int = 7,
    every_minutes: int = 1,
    config: HospitalConfig | None = None,
    start: datetime = START,
) -> tuple[Hospital, list[Payload]]:
    hospital = Hospital(config or HospitalConfig(), random.Random(seed), start)
    events: list[Payload] = []
    for minute in range(0, minutes + 1, every_minutes):
        events += hospital.step(start + timedelta(minutes=minute))
    return hospital, events


@pytest.fixture(scope="module")
def one_day() -> list[Payload]:
    return simulate(DAY_MINUTES)[1]


def of_kind(events: list[Payload], kind: str) -> list[Payload]:
    return [e for e in events if e["kind"] == kind]


def monitor_readings(events: list[Payload]) -> list[Payload]:
    """Vital signs from bedside monitors (a lab result names no device)."""
    return [e for e in of_kind(events, "VitalSignsObserved") if "device_id" in e]


def at(event: Payload) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def values(event: Payload) -> dict[str, Any]:
    return {m["parameter"]: m["value"] for m in event["measurements"]}


def test_same_seed_and_start_give_the_same_events() -> None:
    assert simulate(240)[1] == simulate(240)[1]


def test_events_do_not_depend_on_how_time_is_stepped() -> None:
    assert simulate(240, every_minutes=1)[1] == simulate(240, every_minutes=240)[1]


@pytest.mark.parametrize(
    ("other_seed", "other_start"), [(8, START), (7, START + timedelta(seconds=1))]
)
def test_another_seed_or_start_gives_other_ids(other_seed: int, other_start: datetime) -> None:
    ids = {e["event_id"] for e in simulate(60)[1]}
    other = {e["event_id"] for e in simulate(60, seed=other_seed, start=other_start)[1]}
    assert ids.isdisjoint(other)


def test_every_event_validates_against_the_contract(one_day: list[Payload]) -> None:
    for payload in one_day:
        assert "recorded_at" not in payload and "source" not in payload
        event = decode_python(
            EVENTS_RAW, {**payload, "recorded_at": payload["occurred_at"], "source": "simulator"}
        )
        assert event.kind == payload["kind"]
        assert str(event.event_id) == payload["event_id"]


def test_events_come_in_time_order(one_day: list[Payload]) -> None:
    times = [at(e) for e in one_day]
    assert times == sorted(times)
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)


def test_ids_are_pseudonymous(one_day: list[Payload]) -> None:
    clinical = [e for e in one_day if "patient_id" in e]
    assert all(re.fullmatch(r"P\d{6}", e["patient_id"]) for e in clinical)
    vitals = monitor_readings(one_day)
    assert vitals and all(re.fullmatch(r"MON-\d{3}", e["device_id"]) for e in vitals)


def test_a_patient_is_admitted_before_anything_else_and_silent_after_discharge(
    one_day: list[Payload],
) -> None:
    timeline: dict[str, list[str]] = defaultdict(list)
    for event in one_day:
        if "patient_id" in event:
            timeline[event["patient_id"]].append(event["kind"])
    assert len(timeline) > 40
    for kinds in timeline.values():
        assert kinds[0] == "PatientAdmitted"
        assert kinds.count("PatientAdmitted") == 1
        assert kinds.count("PatientDischarged") <= 1
        if "PatientDischarged" in kinds:
            assert kinds[-1] == "PatientDischarged"


def test_admissions_and_transfers_leave_the_bed_to_the_scheduler(one_day: list[Payload]) -> None:
    adt = of_kind(one_day, "PatientAdmitted") + of_kind(one_day, "PatientTransferred")
    assert adt and all(e["bed"] is None for e in adt)


def test_admissions_and_transfers_say_the_patients_sex_for_single_sex_bays(
    one_day: list[Payload],
) -> None:
    moves = of_kind(one_day, "PatientAdmitted") + of_kind(one_day, "PatientTransferred")
    sexes = {e["patient_id"]: e["sex"] for e in moves}
    assert set(sexes.values()) == {"female", "male"}
    assert 0.3 < sum(s == "female" for s in sexes.values()) / len(sexes) < 0.7
    for event in moves:  # a patient keeps their sex from one move to the next
        assert event["sex"] == sexes[event["patient_id"]]


def test_patients_arrive_through_the_ed_and_move_to_wards(one_day: list[Payload]) -> None:
    admitted = {e["ward"] for e in of_kind(one_day, "PatientAdmitted")}
    moves = {(e["from_ward"], e["ward"]) for e in of_kind(one_day, "PatientTransferred")}
    assert {ED, WARD_A, WARD_B} <= admitted
    assert {(ED, WARD_A), (ED, WARD_B)} <= moves


def test_some_deteriorating_patients_are_moved_to_hdu() -> None:
    config = HospitalConfig(scheduled_vitals=False)
    _, events = simulate(2 * DAY_MINUTES, every_minutes=10, config=config)
    moves = {(e["from_ward"], e["ward"]) for e in of_kind(events, "PatientTransferred")}
    assert any(to == HDU for _, to in moves)


def test_transfers_and_discharges_name_the_ward_the_patient_is_in(one_day: list[Payload]) -> None:
    ward: dict[str, str] = {}
    for event in one_day:
        if event["kind"] == "PatientAdmitted":
            ward[event["patient_id"]] = event["ward"]
        elif event["kind"] == "PatientTransferred":
            assert event["from_ward"] == ward[event["patient_id"]] != event["ward"]
            ward[event["patient_id"]] = event["ward"]
        elif event["kind"] == "PatientDischarged":
            assert event["ward"] == ward.pop(event["patient_id"])


def test_census_stays_near_the_configured_number_of_patients() -> None:
    config = HospitalConfig(scheduled_vitals=False)
    hospital, events = simulate(3 * DAY_MINUTES, every_minutes=30, config=config)
    assert 20 <= len(hospital.patients) <= 70
    assert len(of_kind(events, "PatientDischarged")) > 100


def test_monitors_report_every_interval() -> None:
    config = HospitalConfig(vitals_interval_seconds=300, arrivals_per_hour=0)
    _, events = simulate(120, config=config)
    readings: dict[str, list[datetime]] = defaultdict(list)
    for event in monitor_readings(events):
        readings[event["patient_id"]].append(at(event))
    assert len(readings) == 40
    for times in readings.values():
        assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(seconds=300)}


def test_no_bed_reports_without_housekeeping(one_day: list[Payload]) -> None:
    assert of_kind(one_day, "BedStatusReported") == []


def test_dirty_beds_are_cleaned_then_made_available() -> None:
    hospital = Hospital(HospitalConfig(arrivals_per_hour=0), random.Random(1), START)
    hospital.step(START + timedelta(minutes=5))
    hospital.beds_to_clean([(WARD_A, "WARD-A-07"), (HDU, "HDU-02")])
    hospital.beds_to_clean([(WARD_A, "WARD-A-07")])  # polled again while still dirty
    events = hospital.step(START + timedelta(hours=3))
    reports = of_kind(events, "BedStatusReported")
    for ward, bed in [(WARD_A, "WARD-A-07"), (HDU, "HDU-02")]:
        mine = [e for e in reports if e["bed"] == bed]
        assert [(e["ward"], e["status"]) for e in mine] == [(ward, "cleaning"), (ward, "available")]
        cleaning, available = (at(e) for e in mine)
        assert START + timedelta(minutes=15) <= cleaning < available


def test_a_bed_can_be_cleaned_again_after_it_was_made_available() -> None:
    hospital = Hospital(HospitalConfig(arrivals_per_hour=0), random.Random(1), START)
    hospital.beds_to_clean([(WARD_B, "WARD-B-01")])
    hospital.step(START + timedelta(hours=2))
    hospital.beds_to_clean([(WARD_B, "WARD-B-01")])
    reports = of_kind(hospital.step(START + timedelta(hours=4)), "BedStatusReported")
    assert [e["status"] for e in reports] == ["cleaning", "available"]


@pytest.mark.parametrize("severity", [0.5, 1.0])
def test_illness_raises_pulse_breathing_and_temperature_and_lowers_bp(severity: float) -> None:
    rng = random.Random(3)
    well = [observe(BASELINE, 0.0, rng) for _ in range(50)]
    ill = [observe(BASELINE, severity, rng) for _ in range(50)]

    def mean(readings: list[Any], field: str) -> float:
        return statistics.mean(getattr(r, field) for r in readings)

    for field in ("heart_rate_bpm", "respiratory_rate_per_min", "temperature_celsius"):
        assert mean(ill, field) > mean(well, field)
    for field in ("systolic_bp_mmhg", "spo2_percent"):
        assert mean(ill, field) < mean(well, field)
    assert all(r.supplemental_oxygen for r in ill)
    assert not any(r.supplemental_oxygen for r in well)


def test_severe_illness_means_oxygen_confusion_and_low_spo2() -> None:
    rng = random.Random(3)
    readings = [observe(BASELINE, 1.0, rng) for _ in range(50)]
    assert all(r.supplemental_oxygen and r.consciousness != "A" for r in readings)
    assert statistics.mean(r.spo2_percent for r in readings) <= 91
    assert all(r.diastolic_bp_mmhg < r.systolic_bp_mmhg for r in readings)


def test_readings_are_rounded_as_a_monitor_shows_them(one_day: list[Payload]) -> None:
    for event in monitor_readings(one_day)[:5000]:
        for name, value in values(event).items():
            if name == "temperature":
                assert round(value, 1) == value
            else:
                assert isinstance(value, int)


def test_deteriorating_patients_vitals_worsen_over_hours() -> None:
    hospital = Hospital(HospitalConfig(vitals_interval_seconds=300), random.Random(11), START)
    courses: dict[str, Course] = {}
    events: list[Payload] = []
    end = START + timedelta(days=2)
    for minute in range(0, 2 * DAY_MINUTES + 1, 5):
        events += hospital.step(START + timedelta(minutes=minute))
        courses.update({pid: p.course for pid, p in hospital.patients.items()})
    vitals = monitor_readings(events)
    checked = 0
    for pid, course in courses.items():
        worst_from = course.reaches(0.8 * course.peak)
        if course.onset is None or worst_from is None or course.peak < 0.8:
            continue
        if course.onset < START + timedelta(hours=1) or worst_from > end - timedelta(hours=2):
            continue  # no readings before the illness, or none at its worst
        mine = [e for e in vitals if e["patient_id"] == pid]
        before = [values(e) for e in mine if at(e) < course.onset]
        worst = [e for e in mine if course.severity(at(e)) >= 0.8 * course.peak]

        def mean(readings: list[dict[str, Any]], name: str) -> float:
            return statistics.mean(r[name] for r in readings)

        at_worst = [values(e) for e in worst]
        assert mean(at_worst, "heart_rate") > mean(before, "heart_rate") + 25
        assert mean(at_worst, "respiratory_rate") > mean(before, "respiratory_rate") + 7
        assert mean(at_worst, "systolic_bp") < mean(before, "systolic_bp") - 20
        assert all(e["supplemental_oxygen"] for e in worst)
        assert not any(e["supplemental_oxygen"] for e in mine if at(e) < course.onset)
        checked += 1
    assert checked >= 2


def test_about_fifteen_percent_of_patients_deteriorate() -> None:
    config = HospitalConfig(initial_patients=1000, arrivals_per_hour=0)
    hospital = Hospital(config, random.Random(5), START)
    hospital.step(START)
    ill = sum(p.course.onset is not None for p in hospital.patients.values())
    assert 110 <= ill <= 190


def test_about_one_monitor_in_ten_sends_fahrenheit(one_day: list[Payload]) -> None:
    vitals = of_kind(one_day, "VitalSignsObserved")
    units = [
        m["unit"] for e in vitals for m in e["measurements"] if m["parameter"] == "temperature"
    ]
    assert set(units) == {"Cel", "[degF]"}
    assert 0.05 <= units.count("[degF]") / len(units) <= 0.15
    fahrenheit = [m["value"] for e in vitals for m in e["measurements"] if m["unit"] == "[degF]"]
    assert min(fahrenheit) >= 95 and max(fahrenheit) <= 107


def test_impossible_readings_occur_at_a_low_rate() -> None:
    config = HospitalConfig(initial_patients=50, arrivals_per_hour=0, scheduled_vitals=False)
    hospital = Hospital(config, random.Random(2), START)
    hospital.step(START)
    readings = hospital.readings(START, 40_000)
    limits = {"heart_rate": 300, "respiratory_rate": 100, "spo2": 100, "systolic_bp": 350}
    impossible = [
        e for e in readings if any(values(e).get(name, 0) > top for name, top in limits.items())
    ]
    assert 0.003 <= len(impossible) / len(readings) <= 0.008


def test_load_mode_sends_vitals_only_on_request_and_in_turn() -> None:
    config = HospitalConfig(initial_patients=4, arrivals_per_hour=0, scheduled_vitals=False)
    hospital = Hospital(config, random.Random(2), START)
    admissions = hospital.step(START + timedelta(hours=1))
    assert {e["kind"] for e in admissions} == {"PatientAdmitted"}
    readings = hospital.readings(START + timedelta(hours=1), 10)
    assert len(readings) == 10
    assert [e["patient_id"] for e in readings[:4]] == sorted(e["patient_id"] for e in admissions)
    assert readings[4]["patient_id"] == readings[0]["patient_id"]


def test_time_cannot_go_backwards() -> None:
    hospital = Hospital(HospitalConfig(), random.Random(1), START)
    hospital.step(START + timedelta(minutes=5))
    with pytest.raises(ValueError, match="backwards"):
        hospital.step(START)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Hospital(HospitalConfig(), random.Random(1), datetime(2025, 3, 1, 8, 0))


def test_wall_stamps_map_simulated_hours_to_real_minutes() -> None:
    clock = CompressedClock(START, speedup=60)
    hospital = Hospital(HospitalConfig(), random.Random(7), START, stamp=clock.wall)
    events = hospital.step(clock.simulated(START + timedelta(minutes=2)))
    assert events
    assert max(at(e) for e in events) <= START + timedelta(minutes=2)
    assert clock.wall(clock.simulated(START + timedelta(seconds=90))) == START + timedelta(
        seconds=90
    )


# -- the transport shell's pure helpers --------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0", 0.05), ("3600", 30.0), ("soon", 1.5), ("nan", 1.5), (None, 1.5)],
)
def test_retry_after_is_bounded(header: str | None, expected: float) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert retry_after_seconds(httpx.Response(503, headers=headers), 1.5) == expected


def test_load_pacer_keeps_the_rate_and_skips_rather_than_bursts() -> None:
    stats = SimulatorStats()
    pacer = LoadPacer(100)
    assert [pacer.due(t, stats) for t in (0.0, 0.25, 0.5, 0.5)] == [0, 25, 25, 0]
    assert pacer.due(10.5, stats) == 100
    assert stats.load_events_skipped == 900


def news2(event: Payload) -> int:
    """The NEWS2 aggregate of one reading (SpO2 scale 1), scored by the diagnosis rules."""
    v = values(event)
    celsius = v["temperature"]
    if any(m["unit"] == "[degF]" for m in event["measurements"]):
        celsius = (celsius - 32) * 5 / 9
    return (
        rules.respiration_points(v["respiratory_rate"])
        + rules.spo2_scale1_points(v["spo2"])
        + rules.oxygen_points(event["supplemental_oxygen"])
        + rules.systolic_points(v["systolic_bp"])
        + rules.pulse_points(v["heart_rate"])
        + rules.consciousness_points(Consciousness(event["consciousness"]))
        + rules.temperature_points(celsius)
    )


def test_most_readings_score_low_and_some_reach_medium_and_high(one_day: list[Payload]) -> None:
    scores = [news2(e) for e in monitor_readings(one_day)]
    low = sum(s <= 4 for s in scores) / len(scores)
    medium = sum(5 <= s <= 6 for s in scores) / len(scores)
    high = sum(s >= 7 for s in scores) / len(scores)
    assert low >= 0.75
    assert medium >= 0.005 and high >= 0.02


# -- clinicians: ceilings of care, suspected infection, acknowledgements, labs ------------------

CARE_KINDS = ("CeilingOfCareSet", "SuspectedInfectionSet", "AlertAcknowledged")
CLINICAL = HospitalConfig(
    initial_patients=60, deteriorating_fraction=0.6, vitals_interval_seconds=300
)
"""Many deteriorating patients, monitors every 5 minutes: every clinical event occurs in a day."""


def lab_results(events: list[Payload]) -> list[Payload]:
    return [e for e in of_kind(events, "VitalSignsObserved") if "device_id" not in e]


def celsius(event: Payload) -> float:
    (temperature,) = [m for m in event["measurements"] if m["parameter"] == "temperature"]
    value = float(temperature["value"])
    return (value - 32) * 5 / 9 if temperature["unit"] == "[degF]" else value


def run_hospital(
    config: HospitalConfig, hours: int, *, seed: int = 7, every_minutes: int = 5
) -> tuple[Hospital, list[Payload], dict[str, Course]]:
    """Events of `hours` simulated hours, and the course of every patient seen."""
    hospital = Hospital(config, random.Random(seed), START)
    events: list[Payload] = []
    courses: dict[str, Course] = {}
    for minute in range(0, hours * 60 + 1, every_minutes):
        events += hospital.step(START + timedelta(minutes=minute))
        courses.update({pid: p.course for pid, p in hospital.patients.items()})
    return hospital, events, courses


@pytest.fixture(scope="module")
def clinical_day() -> tuple[Hospital, list[Payload], dict[str, Course]]:
    return run_hospital(CLINICAL, 24)


def test_every_clinical_event_validates_against_the_contract(
    clinical_day: tuple[Hospital, list[Payload], dict[str, Course]],
) -> None:
    _, events, _ = clinical_day
    kinds = {e["kind"] for e in events}
    assert set(CARE_KINDS) <= kinds and lab_results(events)
    for payload in events:
        event = decode_python(
            EVENTS_RAW, {**payload, "recorded_at": payload["occurred_at"], "source": "simulator"}
        )
        assert event.kind == payload["kind"]
    times = [at(e) for e in events]
    assert times == sorted(times)


def test_clinical_events_are_reproducible_and_independent_of_stepping() -> None:
    first = run_hospital(CLINICAL, 8)[1]
    assert first == run_hospital(CLINICAL, 8)[1]
    assert first == run_hospital(CLINICAL, 8, every_minutes=480)[1]
    assert first != run_hospital(CLINICAL, 8, seed=8)[1]


def test_clinicians_add_events_without_changing_the_rest() -> None:
    """With no ceilings, the same seed gives the same admissions, transfers, discharges and
    monitor readings as with no clinical events at all (they draw from their own stream)."""
    quiet = HospitalConfig(
        ceiling_general_fraction=0,
        ceiling_hdu_fraction=0,
        suspected_infection_probability=0,
        never_acknowledged_fraction=1,
    )
    busy = HospitalConfig(ceiling_general_fraction=0, ceiling_hdu_fraction=0)

    def flow(events: list[Payload]) -> list[dict[str, Any]]:
        labs = {e["event_id"] for e in lab_results(events)}
        kept = [e for e in events if e["kind"] not in CARE_KINDS and e["event_id"] not in labs]
        return [{k: v for k, v in e.items() if k != "event_id"} for e in kept]

    quiet_events, busy_events = (
        simulate(12 * 60, config=quiet)[1],
        simulate(12 * 60, config=busy)[1],
    )
    assert {e["kind"] for e in quiet_events} & set(CARE_KINDS) == set()
    assert {"AlertAcknowledged", "SuspectedInfectionSet"} <= {e["kind"] for e in busy_events}
    assert flow(quiet_events) == flow(busy_events)


def test_some_patients_get_a_ceiling_of_care_on_admission() -> None:
    config = HospitalConfig(initial_patients=4000, arrivals_per_hour=0, scheduled_vitals=False)
    events = Hospital(config, random.Random(3), START).step(START)
    admitted = of_kind(events, "PatientAdmitted")
    ceilings = of_kind(events, "CeilingOfCareSet")
    assert len(admitted) == 4000
    assert len({e["patient_id"] for e in ceilings}) == len(ceilings)
    assert {e["patient_id"] for e in ceilings} <= {e["patient_id"] for e in admitted}
    assert {e["set_by_role"] for e in ceilings} == {"consultant"}
    assert {at(e) for e in ceilings} == {START}
    general = sum(e["ceiling"] == "general" for e in ceilings) / len(admitted)
    hdu = sum(e["ceiling"] == "hdu" for e in ceilings) / len(admitted)
    assert 0.065 <= general <= 0.095
    assert 0.038 <= hdu <= 0.062
    assert {e["ceiling"] for e in ceilings} == {"general", "hdu"}


def test_a_ceiling_of_care_is_sent_after_the_admission_it_belongs_to(
    clinical_day: tuple[Hospital, list[Payload], dict[str, Course]],
) -> None:
    _, events, _ = clinical_day
    admitted_at = {
        e["patient_id"]: i for i, e in enumerate(events) if e["kind"] == "PatientAdmitted"
    }
    for i, event in enumerate(events):
        if event["kind"] == "CeilingOfCareSet":
            assert i == admitted_at[event["patient_id"]] + 1
            assert event["occurred_at"] == events[i - 1]["occurred_at"]


def test_no_ceilings_when_the_fractions_are_zero() -> None:
    config = HospitalConfig(
        initial_patients=500,
        arrivals_per_hour=0,
        scheduled_vitals=False,
        ceiling_general_fraction=0,
        ceiling_hdu_fraction=0,
    )
    assert of_kind(Hospital(config, random.Random(3), START).step(START), "CeilingOfCareSet") == []


def test_escalation_respects_the_ceiling_of_care() -> None:
    config = HospitalConfig(
        scheduled_vitals=False,
        deteriorating_fraction=0.6,
        ceiling_general_fraction=0.3,
        ceiling_hdu_fraction=0.3,
    )
    _, events = simulate(3 * DAY_MINUTES, every_minutes=30, config=config)
    ceiling = {e["patient_id"]: e["ceiling"] for e in of_kind(events, "CeilingOfCareSet")}
    moves = [
        (ceiling.get(e["patient_id"], "icu"), e["ward"])
        for e in of_kind(events, "PatientTransferred")
    ]
    assert ("icu", HDU) in moves and ("hdu", HDU) in moves
    assert ("general", HDU) not in moves and ("general", ICU) not in moves
    assert ("hdu", ICU) not in moves


def test_infection_is_suspected_once_after_a_deteriorating_patients_first_fever(
    clinical_day: tuple[Hospital, list[Payload], dict[str, Course]],
) -> None:
    _, events, courses = clinical_day
    first_fever: dict[str, datetime] = {}
    for event in monitor_readings(events):
        if celsius(event) > 38.0:
            first_fever.setdefault(event["patient_id"], at(event))
    suspected = of_kind(events, "SuspectedInfectionSet")
    assert suspected
    assert len({e["patient_id"] for e in suspected}) == len(suspected)
    for event in suspected:
        pid = event["patient_id"]
        assert event["suspected"] is True and event["set_by_role"] == "foundation doctor"
        assert courses[pid].onset is not None
        delay = at(event) - first_fever[pid]
        assert timedelta(minutes=3) <= delay <= timedelta(minutes=15)


def test_infection_is_suspected_in_about_seven_febrile_patients_in_ten() -> None:
    config = HospitalConfig(
        initial_patients=400,
        arrivals_per_hour=0,
        deteriorating_fraction=1.0,
        vitals_interval_seconds=600,
        mean_stay_hours=1000,
    )
    hospital, events, _ = run_hospital(config, 12, every_minutes=60)
    end = START + timedelta(hours=12)
    febrile = {
        e["patient_id"]
        for e in monitor_readings(events)
        if celsius(e) > 38.0 and at(e) < end - timedelta(minutes=15)
    } & set(hospital.patients)
    suspected = {e["patient_id"] for e in of_kind(events, "SuspectedInfectionSet")}
    assert len(febrile) > 250
    assert 0.62 <= len(suspected & febrile) / len(febrile) <= 0.78
    none = HospitalConfig(initial_patients=100, deteriorating_fraction=0.0, arrivals_per_hour=0)
    assert of_kind(run_hospital(none, 12, every_minutes=60)[1], "SuspectedInfectionSet") == []


def test_alert_crossings_follow_the_course() -> None:
    course = Course(
        onset=START, peak=1.0, ramp=timedelta(hours=10), hold=timedelta(hours=2),
        recovery=timedelta(hours=10),
    )  # fmt: skip
    medium = START + timedelta(hours=10 * MEDIUM_BAND_SEVERITY)
    high = START + timedelta(hours=10 * HIGH_BAND_SEVERITY)
    assert alert_crossings(course, START - timedelta(hours=1)) == [medium, high]
    between = medium + (high - medium) / 2
    assert alert_crossings(course, between) == [between, high]  # already medium on arrival
    assert alert_crossings(course, START + timedelta(hours=11)) == [START + timedelta(hours=11)]
    assert alert_crossings(course, START + timedelta(hours=22)) == []  # recovered before arrival
    mild = Course(onset=START, peak=0.45, ramp=timedelta(hours=4))
    assert alert_crossings(mild, START) == [
        START + timedelta(hours=4 * MEDIUM_BAND_SEVERITY / 0.45)
    ]
    assert alert_crossings(Course(onset=START, peak=0.4, ramp=timedelta(hours=4)), START) == []
    assert alert_crossings(Course(), START) == []


def test_the_alert_severities_give_medium_and_high_news2_bands() -> None:
    """The calibration of MEDIUM/HIGH_BAND_SEVERITY against diagnosis's NEWS2 chart: at each
    level, most readings score at least that band; a little below it, most do not."""
    rng = random.Random(1)
    baselines = [draw_baseline(rng) for _ in range(200)]

    def share(severity: float, at_least: int) -> float:
        scores = []
        for baseline in baselines:
            reading = observe(baseline, severity, rng)
            scores.append(
                rules.respiration_points(reading.respiratory_rate_per_min)
                + rules.spo2_scale1_points(reading.spo2_percent)
                + rules.oxygen_points(reading.supplemental_oxygen)
                + rules.systolic_points(reading.systolic_bp_mmhg)
                + rules.pulse_points(reading.heart_rate_bpm)
                + rules.consciousness_points(reading.consciousness)
                + rules.temperature_points(reading.temperature_celsius)
            )
        return sum(score >= at_least for score in scores) / len(scores)

    assert share(MEDIUM_BAND_SEVERITY, 5) > 0.5 > share(MEDIUM_BAND_SEVERITY - 0.06, 5)
    assert share(HIGH_BAND_SEVERITY, 7) > 0.5 > share(HIGH_BAND_SEVERITY - 0.06, 7)


def acknowledgement_run(
    **knobs: Any,
) -> tuple[dict[str, list[datetime]], dict[str, list[datetime]], list[Payload], set[str]]:
    """Crossings and acknowledgements of patients who stay, crossing at least 3 hours before the
    end (an acknowledgement later than that has probability e^-15); the acknowledgements; and
    every patient whose course crosses an alert level at all."""
    config = HospitalConfig(
        initial_patients=2000,
        arrivals_per_hour=0,
        scheduled_vitals=False,
        deteriorating_fraction=1.0,
        mean_stay_hours=1000,
        **knobs,
    )
    hospital, events, courses = run_hospital(config, 24, every_minutes=30)
    end = START + timedelta(hours=24)
    crossings = {
        pid: alert_crossings(patient.course, START) for pid, patient in hospital.patients.items()
    }
    crossings = {
        pid: times
        for pid, times in crossings.items()
        if times and max(times) < end - timedelta(hours=3)
    }
    acks: dict[str, list[datetime]] = defaultdict(list)
    acknowledged = of_kind(events, "AlertAcknowledged")
    for event in acknowledged:
        acks[event["patient_id"]].append(at(event))
    crossing = {pid for pid, course in courses.items() if alert_crossings(course, START)}
    return crossings, acks, acknowledged, crossing


def test_alerts_are_acknowledged_after_band_crossings_but_not_always() -> None:
    crossings, acks, events, crossing = acknowledgement_run()
    assert {e["acknowledged_by_role"] for e in events} == {"registered nurse"}
    assert all("assessment_id" not in e for e in events)
    assert set(acks) <= crossing  # nobody's alert is acknowledged without a crossing
    assert len(crossing) < 2000  # some courses stay below the medium level
    total = sum(len(times) for times in crossings.values())
    acknowledged = sum(len(acks.get(pid, [])) for pid in crossings)
    assert total > 2000
    assert 0.82 <= acknowledged / total <= 0.88  # about 15 % are never acknowledged
    delays = []
    for pid, times in crossings.items():
        mine = acks.get(pid, [])
        assert len(mine) <= len(times)
        assert all(ack >= min(times) for ack in mine)
        if len(mine) == len(times):  # all acknowledged: the delays sum whatever the pairing
            delays.append(
                (
                    sum((a - START for a in mine), timedelta())
                    - sum((c - START for c in times), timedelta())
                )
                / len(times)
            )
    mean_minutes = statistics.mean(d.total_seconds() / 60 for d in delays)
    assert 10.5 <= mean_minutes <= 13.5


@pytest.mark.parametrize(("never", "share"), [(0.0, 1.0), (1.0, 0.0)])
def test_the_never_acknowledged_fraction_is_respected(never: float, share: float) -> None:
    crossings, acks, _, _ = acknowledgement_run(never_acknowledged_fraction=never)
    total = sum(len(times) for times in crossings.values())
    assert sum(len(acks.get(pid, [])) for pid in crossings) == share * total


def test_a_deteriorating_patient_gets_one_white_cell_count_about_an_hour_in() -> None:
    config = HospitalConfig(
        initial_patients=600, arrivals_per_hour=0, scheduled_vitals=False, mean_stay_hours=1000
    )
    hospital, events, courses = run_hospital(config, 12, every_minutes=60)
    labs = lab_results(events)
    taken: dict[str, list[Payload]] = defaultdict(list)
    for event in labs:
        taken[event["patient_id"]].append(event)
    ill = {pid for pid, course in courses.items() if course.onset is not None}
    stayed_ill = {
        pid
        for pid in ill & set(hospital.patients)
        if max(courses[pid].onset or START, START) < START + timedelta(hours=10)
    }
    assert len(stayed_ill) > 50
    assert set(taken) <= ill
    assert stayed_ill <= set(taken)
    assert all(len(results) == 1 for results in taken.values())
    residuals = []
    for pid, (event,) in taken.items():
        course = courses[pid]
        assert course.onset is not None
        after = at(event) - max(course.onset, START)
        assert timedelta(minutes=50) <= after <= timedelta(minutes=70)
        assert event["measurements"] == [
            {"parameter": "white_cell_count", "value": event["measurements"][0]["value"],
             "unit": "10*9/L", "loinc": "6690-2"}
        ]  # fmt: skip
        value = event["measurements"][0]["value"]
        assert 1.0 <= value <= 40.0 and round(value, 1) == value
        residuals.append(value - (7 + 9 * course.severity(at(event))))
    assert abs(statistics.mean(residuals)) < 0.3
    assert 0.7 < statistics.stdev(residuals) < 1.3


def test_white_cell_count_rises_with_severity_and_is_clipped() -> None:
    rng = random.Random(4)
    well = [white_cell_count(0.0, rng) for _ in range(500)]
    ill = [white_cell_count(1.0, rng) for _ in range(500)]
    assert 6.5 < statistics.mean(well) < 7.5 and 15.5 < statistics.mean(ill) < 16.5
    assert all(1.0 <= v <= 40.0 and round(v, 1) == v for v in well + ill)
    assert white_cell_count(10.0, rng) == 40.0 and white_cell_count(-10.0, rng) == 1.0


def test_settings_pass_the_clinical_knobs_to_the_hospital() -> None:
    settings = SimulatorSettings(
        ceiling_general_fraction=0.2,
        ceiling_hdu_fraction=0.1,
        suspected_infection_probability=0.5,
        acknowledgement_mean_minutes=5,
        never_acknowledged_fraction=0.3,
        lab_after_onset_minutes=90,
    )
    config = hospital_config(settings)
    assert (
        config.ceiling_general_fraction,
        config.ceiling_hdu_fraction,
        config.suspected_infection_probability,
        config.acknowledgement_mean_minutes,
        config.never_acknowledged_fraction,
        config.lab_after_onset_minutes,
    ) == (0.2, 0.1, 0.5, 5, 0.3, 90)
    defaults = hospital_config(SimulatorSettings())
    assert (defaults.ceiling_general_fraction, defaults.ceiling_hdu_fraction) == (0.08, 0.05)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SimulatorSettings(ceiling_general_fraction=0.7, ceiling_hdu_fraction=0.4)


async def test_housekeeping_reads_the_scheduler_with_the_api_key() -> None:
    def scheduler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer sim-key-0123456789":
            return httpx.Response(401, json={"detail": "a valid key is required"})
        ward = request.url.path.split("/")[3]
        beds = [
            {"bed": f"{ward}-01", "status": "dirty"},
            {"bed": f"{ward}-02", "status": "available"},
        ]
        return httpx.Response(200, json={"as_of": "x", "source": "redis-live-state", "beds": beds})

    async with httpx.AsyncClient(transport=httpx.MockTransport(scheduler)) as client:
        assert await dirty_beds(client, "http://scheduler") is None, "no key: no housekeeping"
        dirty = await dirty_beds(client, "http://scheduler/", "sim-key-0123456789")
    assert dirty == [(ward, f"{ward}-01") for ward in WARDS]
