"""Cleaning rules: canonical units, physiological limits at and beyond each edge, dedupe window."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from schemas.observations import Measurement, VitalSignsObserved
from schemas.vocabulary import Consciousness, VitalParameter
from services.cleaning.domain import (
    CleaningRejection,
    DedupeWindow,
    clean_vital_signs,
    to_canonical,
)

HR = VitalParameter.HEART_RATE
RR = VitalParameter.RESPIRATORY_RATE
SPO2 = VitalParameter.SPO2
SYS = VitalParameter.SYSTOLIC_BP
DIA = VitalParameter.DIASTOLIC_BP
TEMP = VitalParameter.TEMPERATURE

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def m(parameter: VitalParameter, value: float, unit: str, loinc: str | None = None) -> Measurement:
    return Measurement(parameter=parameter, value=value, unit=unit, loinc=loinc)


def observed(*measurements: Measurement, **extra: object) -> VitalSignsObserved:
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="bedside-gw",
        patient_id="P1",
        measurements=list(measurements),
        **extra,  # type: ignore[arg-type]
    )


def label(value: object) -> str:
    if isinstance(value, Measurement):
        return f"{value.parameter.value}={value.value:g} {value.unit}"
    return str(value)


@pytest.mark.parametrize(
    ("measurement", "field", "value"),
    [
        (m(TEMP, 98.6, "[degF]"), "temperature_celsius", 37.0),
        (m(TEMP, 310.15, "K"), "temperature_celsius", 37.0),
        (m(TEMP, 37.2, "Cel"), "temperature_celsius", 37.2),
        (m(SYS, 16, "kPa"), "systolic_bp_mmhg", 120.01),
        (m(DIA, 10, "kPa"), "diastolic_bp_mmhg", 75.01),
        (m(SYS, 120, "mm[Hg]"), "systolic_bp_mmhg", 120.0),
        (m(DIA, 80, "mmHg"), "diastolic_bp_mmhg", 80.0),
        (m(SPO2, 0.97, "1"), "spo2_percent", 97.0),
        (m(SPO2, 97, "%"), "spo2_percent", 97.0),
        (m(HR, 1.2, "/s"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "/min"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "{beats}/min"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "bpm"), "heart_rate_bpm", 72.0),
        (m(RR, 0.25, "/s"), "respiratory_rate_per_min", 15.0),
        (m(RR, 15, "{breaths}/min"), "respiratory_rate_per_min", 15.0),
    ],
    ids=lambda x: x.unit if isinstance(x, Measurement) else str(x),
)
def test_converts_to_the_canonical_unit(measurement: Measurement, field: str, value: float) -> None:
    assert to_canonical(measurement) == (field, pytest.approx(value, abs=0.005))


@pytest.mark.parametrize(
    "measurement",
    [m(TEMP, 37, "degC"), m(SPO2, 97, "percent"), m(HR, 1.2, "Hz"), m(SYS, 120, "kPa ")],
    ids=lambda x: repr(x.unit),
)
def test_unknown_unit_is_refused_naming_the_unit(measurement: Measurement) -> None:
    with pytest.raises(CleaningRejection) as refused:
        to_canonical(measurement)
    assert refused.value.reason == "unknown_unit"
    assert repr(measurement.unit) in refused.value.detail
    assert measurement.parameter.value in refused.value.detail


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (m(HR, 300, "/min"), "heart_rate_bpm"),
        (m(HR, 0, "/min"), "heart_rate_bpm"),
        (m(HR, 5, "/s"), "heart_rate_bpm"),  # 300 /min after conversion
        (m(RR, 100, "/min"), "respiratory_rate_per_min"),
        (m(SPO2, 100, "%"), "spo2_percent"),
        (m(SPO2, 1, "1"), "spo2_percent"),
        (m(SPO2, 0, "%"), "spo2_percent"),
        (m(TEMP, 25, "Cel"), "temperature_celsius"),
        (m(TEMP, 45, "Cel"), "temperature_celsius"),
        (m(TEMP, 113, "[degF]"), "temperature_celsius"),  # 45 Cel
        (m(TEMP, 77, "[degF]"), "temperature_celsius"),  # 25 Cel
        (m(SYS, 350, "mmHg"), "systolic_bp_mmhg"),
        (m(DIA, 300, "mmHg"), "diastolic_bp_mmhg"),
    ],
    ids=label,
)
def test_value_at_the_limit_is_possible(measurement: Measurement, field: str) -> None:
    assert to_canonical(measurement)[0] == field


@pytest.mark.parametrize(
    ("measurement", "field", "limit"),
    [
        (m(HR, 300.5, "/min"), "heart_rate_bpm", "0-300"),
        (m(HR, 5.1, "/s"), "heart_rate_bpm", "0-300"),
        (m(HR, -1, "/min"), "heart_rate_bpm", "0-300"),
        (m(RR, -0.5, "/min"), "respiratory_rate_per_min", "0-100"),
        (m(RR, 100.5, "/min"), "respiratory_rate_per_min", "0-100"),
        (m(SPO2, 101, "%"), "spo2_percent", "0-100"),
        (m(SPO2, 1.01, "1"), "spo2_percent", "0-100"),
        (m(SPO2, -1, "%"), "spo2_percent", "0-100"),
        (m(TEMP, 24.9, "Cel"), "temperature_celsius", "25-45"),
        (m(TEMP, 45.1, "Cel"), "temperature_celsius", "25-45"),
        (m(TEMP, 114, "[degF]"), "temperature_celsius", "25-45"),
        (m(TEMP, 0, "K"), "temperature_celsius", "25-45"),
        (m(SYS, 351, "mmHg"), "systolic_bp_mmhg", "0-350"),
        (m(DIA, 300.5, "mmHg"), "diastolic_bp_mmhg", "0-300"),
    ],
    ids=label,
)
def test_value_beyond_the_limit_is_impossible(
    measurement: Measurement, field: str, limit: str
) -> None:
    with pytest.raises(CleaningRejection) as refused:
        to_canonical(measurement)
    assert refused.value.reason == "impossible_value"
    assert refused.value.detail.startswith(f"{field}=")
    assert limit in refused.value.detail


def test_cleans_a_whole_event_into_canonical_vitals() -> None:
    event = observed(
        m(HR, 1.5, "/s", loinc="8867-4"),
        m(TEMP, 98.6, "[degF]", loinc="8310-5"),
        m(SPO2, 0.94, "1"),
        m(SYS, 16, "kPa"),
        m(DIA, 80, "mm[Hg]"),
        m(RR, 18, "/min"),
        supplemental_oxygen=True,
        consciousness=Consciousness.VOICE,
        device_id="monitor-7",
    )
    recorded = clean_vital_signs(event)
    vitals = recorded.vitals
    assert vitals.heart_rate_bpm == 90.0
    assert vitals.temperature_celsius == 37.0
    assert vitals.spo2_percent == 94.0
    assert vitals.systolic_bp_mmhg == pytest.approx(120.01)
    assert vitals.diastolic_bp_mmhg == 80.0
    assert vitals.respiratory_rate_per_min == 18.0
    assert vitals.on_supplemental_oxygen is True
    assert vitals.consciousness is Consciousness.VOICE
    assert (recorded.event_id, recorded.occurred_at, recorded.recorded_at) == (
        event.event_id,
        event.occurred_at,
        event.recorded_at,
    )
    assert (recorded.source, recorded.patient_id, recorded.device_id) == (
        "bedside-gw",
        "P1",
        "monitor-7",
    )


def test_unobserved_parameters_stay_empty() -> None:
    vitals = clean_vital_signs(observed(m(HR, 80, "/min"))).vitals
    assert vitals.heart_rate_bpm == 80.0
    assert vitals.temperature_celsius is None
    assert vitals.spo2_percent is None
    assert vitals.on_supplemental_oxygen is None


def test_origins_keep_the_original_value_unit_and_code() -> None:
    event = observed(m(TEMP, 98.6, "[degF]", loinc="8310-5"), m(SPO2, 0.97, "1"))
    origins = clean_vital_signs(event).origins
    assert [(o.parameter, o.original_value, o.original_unit, o.loinc) for o in origins] == [
        (TEMP, 98.6, "[degF]", "8310-5"),
        (SPO2, 0.97, "1", None),
    ]


@pytest.mark.parametrize(
    ("systolic", "diastolic"),
    [(m(SYS, 90, "mmHg"), m(DIA, 95, "mmHg")), (m(SYS, 120, "mmHg"), m(DIA, 17, "kPa"))],
    ids=["mmHg", "diastolic in kPa"],
)
def test_diastolic_above_systolic_is_refused(systolic: Measurement, diastolic: Measurement) -> None:
    with pytest.raises(CleaningRejection) as refused:
        clean_vital_signs(observed(systolic, diastolic))
    assert refused.value.reason == "impossible_value"
    assert "diastolic_bp_mmhg" in refused.value.detail
    assert "systolic_bp_mmhg" in refused.value.detail


def test_diastolic_equal_to_systolic_is_not_refused() -> None:
    vitals = clean_vital_signs(observed(m(SYS, 90, "mmHg"), m(DIA, 90, "mmHg"))).vitals
    assert (vitals.systolic_bp_mmhg, vitals.diastolic_bp_mmhg) == (90.0, 90.0)


@pytest.mark.parametrize("position", [0, 1, 2], ids=["first", "middle", "last"])
def test_one_impossible_value_refuses_the_whole_event(position: int) -> None:
    good = [m(HR, 80, "/min"), m(TEMP, 37, "Cel")]
    measurements = [*good[:position], m(SPO2, 101, "%"), *good[position:]]
    event = observed(*measurements)
    before = event.model_dump()
    with pytest.raises(CleaningRejection) as refused:
        clean_vital_signs(event)
    assert refused.value.reason == "impossible_value"
    assert refused.value.detail.startswith("spo2_percent=101")
    assert event.model_dump() == before, "the input event must not be modified"


def test_one_unknown_unit_refuses_the_whole_event() -> None:
    with pytest.raises(CleaningRejection) as refused:
        clean_vital_signs(observed(m(HR, 80, "/min"), m(TEMP, 37, "degC")))
    assert refused.value.reason == "unknown_unit"


def test_rejection_message_carries_reason_and_detail() -> None:
    rejection = CleaningRejection("impossible_value", "heart_rate_bpm=400")
    assert str(rejection) == "impossible_value: heart_rate_bpm=400"


# --- dedupe window -------------------------------------------------------------------------


def test_dedupe_window_drops_a_repeat_within_capacity() -> None:
    window = DedupeWindow(3)
    a, b, c = uuid4(), uuid4(), uuid4()
    assert [window.first_time(x) for x in (a, b, c)] == [True, True, True]
    assert [window.first_time(x) for x in (a, b, c)] == [False, False, False]
    assert len(window) == 3


def test_dedupe_window_fourth_id_evicts_the_oldest() -> None:
    window = DedupeWindow(3)
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    assert [window.first_time(x) for x in (a, b, c, d)] == [True, True, True, True]
    assert len(window) == 3
    assert window.first_time(a) is True, "the evicted oldest id is new again"
    # a came back and pushed out b, the oldest now; c and d are still remembered
    assert window.first_time(c) is False
    assert window.first_time(d) is False
    assert window.first_time(b) is True


def test_dedupe_window_repeat_keeps_an_id_fresh() -> None:
    window = DedupeWindow(3)
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    for x in (a, b, c):
        window.first_time(x)
    assert window.first_time(a) is False  # seen again: now the most recent
    assert window.first_time(d) is True  # evicts b, not a
    assert window.first_time(a) is False
    assert window.first_time(b) is True


def test_dedupe_window_memory_is_bounded() -> None:
    window = DedupeWindow(3)
    for _ in range(1000):
        assert window.first_time(uuid4())
    assert len(window) == 3
