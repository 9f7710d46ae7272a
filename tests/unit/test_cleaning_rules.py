"""Cleaning rules: units (pint), code maps, composite values, limits, artifacts, time, dedupe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from schemas.admissions import PatientAdmitted
from schemas.base import Event
from schemas.codec import encode
from schemas.observations import (
    Measurement,
    Spo2ScaleSet,
    VitalSignsObserved,
    VitalSignsRecorded,
)
from schemas.vocabulary import Consciousness, VitalParameter
from services.cleaning.app import load_code_map
from services.cleaning.codes import LocalCodesError, parse_local_codes
from services.cleaning.config import CleaningSettings
from services.cleaning.dedupe import DedupeWindow, ReadingWindow
from services.cleaning.domain import Cleaned, CleaningRejection, CleaningRules, EventCleaner
from services.cleaning.recorded import encode_document
from services.cleaning.units import (
    CANONICAL_UNIT,
    UCUM_TO_PINT,
    affine_conversions,
    unit_registry,
)

HR, RR, SPO2 = VitalParameter.HEART_RATE, VitalParameter.RESPIRATORY_RATE, VitalParameter.SPO2
SYS, DIA, BP = (
    VitalParameter.SYSTOLIC_BP,
    VitalParameter.DIASTOLIC_BP,
    VitalParameter.BLOOD_PRESSURE,
)
TEMP, FLOW, FIO2 = VitalParameter.TEMPERATURE, VitalParameter.OXYGEN_FLOW, VitalParameter.FIO2
WBC, PACO2 = VitalParameter.WHITE_CELL_COUNT, VitalParameter.PACO2

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CODES = load_code_map(CleaningSettings())  # the shipped default map


def m(parameter: VitalParameter | None, value: float | str | None, unit: str | None = None,
      **fields: Any) -> Measurement:  # fmt: skip
    if isinstance(value, str):
        return Measurement(parameter=parameter, text=value, unit=unit, **fields)
    return Measurement(parameter=parameter, value=value, unit=unit, **fields)


def observed(*measurements: Measurement, at: datetime = NOW, **fields: Any) -> VitalSignsObserved:
    values: dict[str, Any] = {
        "source": "bedside-gw",
        "patient_id": "P1",
        "measurements": list(measurements),
        **fields,
    }
    return VitalSignsObserved(event_id=uuid4(), occurred_at=at, recorded_at=at, **values)


class CheckedCleaner(EventCleaner):
    """Checks every recorded document against the contract: its record value is exactly what
    the VitalSignsRecorded model would write (recorded.py's promise), byte for byte."""

    def clean(self, event: Event, now: datetime) -> Cleaned:
        cleaned = super().clean(event, now)
        if cleaned.recorded is not None:
            model = VitalSignsRecorded.model_validate(cleaned.recorded)
            assert encode_document(cleaned.recorded) == encode(model)
        return cleaned


def cleaner(**rules: Any) -> EventCleaner:
    return CheckedCleaner(CleaningRules(**rules), CODES)


def clean(*measurements: Measurement, **fields: Any) -> Cleaned:
    return cleaner().clean(observed(*measurements, **fields), NOW)


def refusal(call: Callable[[], object]) -> CleaningRejection:
    with pytest.raises(CleaningRejection) as refused:
        call()
    return refused.value


def vitals(cleaned: Cleaned) -> dict[str, Any]:
    assert cleaned.event is not None
    return cleaned.event.vitals.model_dump(exclude_none=True)  # type: ignore[attr-defined]


# --- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "field", "expected"),
    [
        (m(TEMP, 98.6, "[degF]"), "temperature_celsius", 37.0),
        (m(TEMP, 310.15, "K"), "temperature_celsius", 37.0),
        (m(TEMP, 37.2, "Cel"), "temperature_celsius", 37.2),
        (m(SYS, 16, "kPa"), "systolic_bp_mmhg", 120.01),
        (m(DIA, 10, "kPa"), "diastolic_bp_mmhg", 75.01),
        (m(SYS, 120, "mm[Hg]"), "systolic_bp_mmhg", 120.0),
        (m(DIA, 80, "mmHg"), "diastolic_bp_mmhg", 80.0),  # a common non-UCUM spelling
        (m(SPO2, 0.97, "1"), "spo2_percent", 97.0),
        (m(SPO2, 97, "%"), "spo2_percent", 97.0),
        (m(HR, 1.2, "/s"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "/min"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "{beats}/min"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "{beat}/min"), "heart_rate_bpm", 72.0),  # any UCUM annotation
        (m(HR, 72, "bpm"), "heart_rate_bpm", 72.0),
        (m(HR, 72, "264864"), "heart_rate_bpm", 72.0),  # MDC_DIM_BEAT_PER_MIN
        (m(RR, 0.25, "/s"), "respiratory_rate_per_min", 15.0),
        (m(RR, 15, "{breaths}/min"), "respiratory_rate_per_min", 15.0),
        (m(FLOW, 2, "L/min"), "oxygen_flow_l_per_min", 2.0),
        (m(FLOW, 2, "l/min"), "oxygen_flow_l_per_min", 2.0),
        (m(FLOW, 2500, "mL/min"), "oxygen_flow_l_per_min", 2.5),
        (m(FLOW, 500, "ml/min"), "oxygen_flow_l_per_min", 0.5),
        (m(FIO2, 0.4, "1"), "fio2_percent", 40.0),
        (m(FIO2, 28, "%"), "fio2_percent", 28.0),
        (m(WBC, 7.3, "10*9/L"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10*9/l"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10*3/uL"), "white_cell_count_10e9_per_l", 7.3),  # 10^3/uL == 10^9/L
        (m(WBC, 7.3, "10*3{cells}/uL"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10*3/mm3"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "/nL"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10^9/L"), "white_cell_count_10e9_per_l", 7.3),  # as labs print it
        (m(WBC, 7.3, "10E9/L"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "x10^9/L"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "G/L"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10^3/uL"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "10E3/uL"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 7.3, "K/uL"), "white_cell_count_10e9_per_l", 7.3),
        (m(WBC, 12.345, "10*9/L"), "white_cell_count_10e9_per_l", 12.35),  # 2 decimals
        (m(PACO2, 40, "mm[Hg]"), "paco2_mmhg", 40.0),
        (m(PACO2, 40, "mmHg"), "paco2_mmhg", 40.0),
        (m(PACO2, 5.3, "kPa"), "paco2_mmhg", 39.75),  # 1 kPa = 7.50062 mmHg
        (m(PACO2, 4.0, "kPa"), "paco2_mmhg", 30.0),
    ],
    ids=lambda x: f"{x.parameter.value} {x.unit}" if isinstance(x, Measurement) else str(x),
)
def test_converts_to_the_canonical_unit(
    measurement: Measurement, field: str, expected: float
) -> None:
    cleaned = clean(measurement)
    assert vitals(cleaned) == {field: pytest.approx(expected, abs=0.005)}
    (origin,) = cleaned.event.origins  # type: ignore[union-attr]
    assert (origin.original_value, origin.original_unit) == (measurement.value, measurement.unit)


def test_the_affine_table_agrees_with_pint_for_every_accepted_unit() -> None:
    registry = unit_registry()
    table = affine_conversions()
    assert len(table) == 26
    for (unit, parameter), (scale, offset) in table.items():
        target = UCUM_TO_PINT[CANONICAL_UNIT[parameter]]
        for value in (-40.0, 0.0, 0.97, 36.6, 98.6, 250.0):
            expected = registry.Quantity(value, UCUM_TO_PINT[unit]).to(target).magnitude
            assert value * scale + offset == pytest.approx(expected, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize(
    ("parameter", "units"),
    [
        (HR, ["/min", "/s"]),
        (RR, ["/min", "/s"]),
        (SPO2, ["%", "1"]),
        (SYS, ["kPa", "mm[Hg]"]),
        (TEMP, ["Cel", "K", "[degF]"]),
        (FLOW, ["L/min", "l/min", "mL/min", "ml/min"]),
        (FIO2, ["%", "1"]),
        (WBC, ["/nL", "10*3/mm3", "10*3/uL", "10*9/L", "10*9/l"]),
        (PACO2, ["kPa", "mm[Hg]"]),
    ],
)
def test_accepts_exactly_the_dimensionally_right_ucum_units(
    parameter: VitalParameter, units: list[str]
) -> None:
    assert sorted(u for u, p in affine_conversions() if p is parameter) == sorted(units)


@pytest.mark.parametrize(
    "measurement",
    [
        m(TEMP, 37.123, "degC"),
        m(SPO2, 97.123, "percent"),
        m(HR, 1.234, "Hz"),
        m(SYS, 120.123, "kPa "),
        m(HR, 72.123, "%"),  # a known UCUM code of the wrong dimension
        m(TEMP, 37.123, "/min"),
        m(WBC, 7.123, "/uL"),  # cells per microlitre: too easily a count sent in 10^3/uL
        m(WBC, 7.123, "%"),
        m(WBC, 7.123, "mmol/L"),
        m(PACO2, 40.123, "%"),
        m(PACO2, 40.123, "10*9/L"),
    ],
    ids=lambda x: f"{x.parameter.value} {x.unit!r}",
)
def test_unknown_unit_is_refused_naming_parameter_and_unit_not_value(
    measurement: Measurement,
) -> None:
    refused = refusal(lambda: clean(measurement))
    assert refused.reason == "unknown_unit"
    assert repr(measurement.unit) in refused.detail
    assert measurement.parameter.value in refused.detail  # type: ignore[union-attr]
    assert ".123" not in refused.detail


# --- code maps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "parameter"),
    [
        (m(HR, 72, "/min", code="RESP", code_system="99LOCAL"), HR),  # the parameter wins
        (m(None, 72, "/min", loinc="8867-4"), HR),
        (m(None, 72, "/min", code="8867-4", code_system="LN"), HR),
        (m(None, 97, "%", code="59408-5", code_system="http://loinc.org"), SPO2),
        (m(None, 72, "/min", code="8889-8", code_system="LN"), HR),  # cleaning's own LOINC table
        (m(None, 72, "/min", code="HR", code_system="99LOCAL"), HR),
        (m(None, 37, "Cel", code="TEMP", code_system="L"), TEMP),
        (m(None, 97, "%", code="150456", code_system="MDC"), SPO2),
        (m(None, 72, "/min", code="HR", code_system="OTHER"), None),
        (m(None, 72, "/min", code="HR"), None),  # no system, no "*" entry
        (m(None, 5.5, "mmol/L", code="2345-7", code_system="LN"), None),
        (m(None, 72, "/min", code="hr", code_system="99LOCAL"), None),  # codes are exact
        (m(None, 7.3, "10*9/L", loinc="6690-2"), WBC),  # laboratory results: white cell count
        (m(None, 7.3, "10*9/L", code="26464-8", code_system="LN"), WBC),
        (m(None, 7.3, "10*9/L", code="804-5", code_system="http://loinc.org"), WBC),
        (m(None, 40, "mm[Hg]", loinc="2019-8"), PACO2),  # arterial PaCO2
    ],
    ids=lambda x: f"{x.code_system}|{x.code}|{x.loinc}" if isinstance(x, Measurement) else str(x),
)
def test_resolves_parameter_loinc_then_local_codes(
    measurement: Measurement, parameter: VitalParameter | None
) -> None:
    assert CODES.resolve(measurement) is parameter


def operator_map(tmp_path: Path, text: str) -> CleaningSettings:
    path = tmp_path / "codes.toml"
    path.write_text(text)
    return CleaningSettings(local_codes_file=str(path))


def test_an_operator_file_extends_and_overrides_the_default_map(tmp_path: Path) -> None:
    settings = operator_map(
        tmp_path,
        '[codes."99LOCAL"]\nHR = "unmapped"\nHF = "heart_rate"\n\n'
        '[codes."*"]\nPULS = "heart_rate"\n\n[codes.LN]\n"8332-9" = "temperature"\n',
    )
    codes = load_code_map(settings)

    def resolve(code: str, system: str | None) -> VitalParameter | None:
        return codes.resolve(m(None, 1, "/min", code=code, code_system=system))

    assert resolve("HR", "99LOCAL") is None, "unmapped by the operator"
    assert resolve("HF", "99LOCAL") is HR
    assert resolve("RESP", "99LOCAL") is RR, "the rest of the default is kept"
    assert (resolve("PULS", "ANY"), resolve("PULS", None)) == (HR, HR)
    assert resolve("8332-9", "LN") is TEMP, "an operator may add LOINC codes"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[codes.L\nHR = 1", "not valid TOML"),
        ('[mapping.L]\nHR = "heart_rate"', "unknown key(s) ['mapping']"),
        ("codes = 1", "codes must be tables"),
        ('[codes]\nL = "heart_rate"', '[codes."L"]: must be a table'),
        ("[codes.L]\nHR = 1", '[codes."L"] HR: must be a parameter name'),
        ('[codes.L]\nHR = "heartrate"', "[codes.\"L\"] HR: 'heartrate' is not one of heart_rate"),
        (f'[codes.L]\n{"X" * 65} = "heart_rate"', "a code has 1-64 characters"),
        (f'[codes."{"S" * 65}"]\nHR = "heart_rate"', "a code system has 1-64 characters"),
    ],
)
def test_an_invalid_operator_file_is_refused_at_start_naming_where(
    tmp_path: Path, text: str, message: str
) -> None:
    settings = operator_map(tmp_path, text)
    with pytest.raises(LocalCodesError) as refused:
        load_code_map(settings)
    assert str(tmp_path / "codes.toml") in str(refused.value)
    assert message in str(refused.value)


def test_a_missing_operator_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(LocalCodesError, match=r"WARDFLOW_LOCAL_CODES_FILE .*missing\.toml"):
        load_code_map(CleaningSettings(local_codes_file=str(tmp_path / "missing.toml")))


def test_the_shipped_map_parses_and_names_only_known_parameters() -> None:
    shipped = (Path(__file__).parents[2] / "services/cleaning/local_codes.toml").read_text()
    table = parse_local_codes(shipped, "local_codes.toml")
    assert table[("99LOCAL", "NBP-S")] is SYS
    assert all(isinstance(p, VitalParameter) for p in table.values())


def test_an_unmapped_measurement_is_dropped_and_counted() -> None:
    cleaned = clean(m(HR, 72, "/min"), m(None, 5.5, "mmol/L", code="GLU", code_system="99LAB"))
    assert (cleaned.valid, cleaned.unmapped) == (1, 1)
    assert vitals(cleaned) == {"heart_rate_bpm": 72.0}
    assert len(cleaned.event.origins) == 1  # type: ignore[union-attr]


def test_an_event_left_without_any_observation_is_dropped_not_dead_lettered() -> None:
    cleaned = clean(m(None, 5.5, "mmol/L", code="GLU", code_system="99LAB"))
    assert (cleaned.event, cleaned.dropped, cleaned.unmapped) == (None, "no_vital_signs", 1)
    kept = clean(m(None, 5.5, "mmol/L", code="GLU"), consciousness=Consciousness.ALERT)
    assert vitals(kept) == {"consciousness": Consciousness.ALERT}


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        (m(None, 80, "/min", code="HR", code_system="99LOCAL"), "conflicting_values"),
        (m(None, 72, "/min", code="HR", code_system="99LOCAL"), None),
        (m(None, 1.2, "/s", loinc="8867-4"), None),  # the same value in another unit
    ],
)
def test_two_measurements_of_one_parameter_must_agree(
    second: Measurement, outcome: str | None
) -> None:
    both = (m(HR, 72, "/min"), second)
    if outcome is None:
        assert vitals(clean(*both)) == {"heart_rate_bpm": 72.0}
    else:
        refused = refusal(lambda: clean(*both))
        assert (refused.reason, refused.detail.split(":")[0]) == (outcome, "heart_rate_bpm")


# --- composite values and unitless temperatures ------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "systolic", "diastolic"),
    [
        (m(BP, "140/90", "mm[Hg]"), 140.0, 90.0),
        (m(BP, " 141.5 / 92 ", "mmHg"), 141.5, 92.0),
        (m(BP, "18.7/12", "kPa"), 140.26, 90.01),
        (m(None, "128/84", "mm[Hg]", code="NBP", code_system="99LOCAL"), 128.0, 84.0),
        (m(None, "128/84", "mm[Hg]", loinc="85354-9"), 128.0, 84.0),
    ],
)
def test_splits_a_composite_blood_pressure(
    measurement: Measurement, systolic: float, diastolic: float
) -> None:
    cleaned = clean(measurement)
    assert vitals(cleaned) == {
        "systolic_bp_mmhg": pytest.approx(systolic),
        "diastolic_bp_mmhg": pytest.approx(diastolic),
    }
    origins = cleaned.event.origins  # type: ignore[union-attr]
    assert [(o.parameter, o.original_value, o.code) for o in origins] == [
        (SYS, measurement.text, measurement.code),
        (DIA, measurement.text, measurement.code),
    ]


@pytest.mark.parametrize("text", ["140/", "140-90", "high", "140/90/60", "-140/90", "140/abc"])
def test_a_malformed_composite_is_refused_naming_the_parameter_not_the_value(text: str) -> None:
    refused = refusal(lambda: clean(m(BP, text, "mm[Hg]")))
    assert refused.reason == "unparseable_value"
    assert refused.detail.startswith("blood_pressure:")
    assert text not in refused.detail


@pytest.mark.parametrize(
    ("measurement", "reason"),
    [
        (m(BP, 140, "mm[Hg]"), "unparseable_value"),  # a number is not a pressure pair
        (m(HR, "72", "/min"), "unparseable_value"),  # text where a number is needed
        (m(BP, "140/90"), "missing_unit"),
        (m(HR, 72), "missing_unit"),
        (m(WBC, 7.3), "missing_unit"),  # only a temperature may come without a unit
        (m(PACO2, 40), "missing_unit"),
        (m(BP, "90/140", "mm[Hg]"), "impossible_value"),
    ],
    ids=str,
)
def test_refuses_what_cannot_be_read(measurement: Measurement, reason: str) -> None:
    refused = refusal(lambda: clean(measurement))
    assert refused.reason == reason


@pytest.mark.parametrize(
    ("value", "unit", "celsius"),
    [
        (36.6, "Cel", 36.6),
        (98.2, "[degF]", 36.78),
        (25.0, "Cel", 25.0),
        (45.0, "Cel", 45.0),
        (77.0, "[degF]", 25.0),
        (113.0, "[degF]", 45.0),
    ],
)
def test_a_unitless_temperature_is_read_by_its_range_and_the_choice_recorded(
    value: float, unit: str, celsius: float
) -> None:
    cleaned = clean(m(TEMP, value))
    assert vitals(cleaned) == {"temperature_celsius": pytest.approx(celsius)}
    (origin,) = cleaned.event.origins  # type: ignore[union-attr]
    assert (origin.original_value, origin.original_unit, origin.unit_inferred) == (
        value,
        unit,
        True,
    )


@pytest.mark.parametrize("value", [24.99, 45.01, 60.0, 76.99, 113.01, 310.15])
def test_a_unitless_temperature_outside_both_ranges_is_impossible(value: float) -> None:
    refused = refusal(lambda: clean(m(TEMP, value)))
    assert refused.reason == "impossible_value"
    assert refused.detail.startswith("temperature=")


def test_a_temperature_with_a_unit_is_not_marked_inferred() -> None:
    (origin,) = clean(m(TEMP, 37.0, "Cel")).event.origins  # type: ignore[union-attr]
    assert origin.unit_inferred is False


# --- physiological limits ----------------------------------------------------------------------

LIMIT_CASES = [
    (HR, "/min", "heart_rate_bpm", 0.0, 300.0),
    (RR, "/min", "respiratory_rate_per_min", 0.0, 100.0),
    (SPO2, "%", "spo2_percent", 0.0, 100.0),
    (SYS, "mm[Hg]", "systolic_bp_mmhg", 0.0, 350.0),
    (DIA, "mm[Hg]", "diastolic_bp_mmhg", 0.0, 300.0),
    (TEMP, "Cel", "temperature_celsius", 25.0, 45.0),
    (FLOW, "L/min", "oxygen_flow_l_per_min", 0.0, 80.0),
    (FIO2, "%", "fio2_percent", 21.0, 100.0),
    (WBC, "10*9/L", "white_cell_count_10e9_per_l", 0.0, 500.0),
    (PACO2, "mm[Hg]", "paco2_mmhg", 5.0, 200.0),
]
AT_LIMITS = [
    pytest.param(m(p, value, unit), id=f"{p.value}={value:g}")
    for p, unit, _, lowest, highest in LIMIT_CASES
    for value in (lowest, highest)
] + [
    pytest.param(m(HR, 5, "/s"), id="heart_rate=5/s"),  # 300 /min
    pytest.param(m(SPO2, 1, "1"), id="spo2=1"),
    pytest.param(m(TEMP, 113, "[degF]"), id="temperature=113[degF]"),
    pytest.param(m(TEMP, 298.15, "K"), id="temperature=298.15K"),
    pytest.param(m(WBC, 500, "10*3/uL"), id="white_cell_count=500/10*3/uL"),
    pytest.param(m(PACO2, 0.67, "kPa"), id="paco2=0.67kPa"),  # 5.03 mmHg
    pytest.param(m(PACO2, 26.66, "kPa"), id="paco2=26.66kPa"),  # 199.97 mmHg
]
BEYOND_LIMITS = [
    pytest.param(m(p, value, unit), field, f"{lowest:g}-{highest:g}", id=f"{p.value}={value:g}")
    for p, unit, field, lowest, highest in LIMIT_CASES
    for value in (lowest - 0.01, highest + 0.01, lowest - 1, highest + 1)
] + [
    pytest.param(m(HR, 5.1, "/s"), "heart_rate_bpm", "0-300", id="heart_rate=5.1/s"),
    pytest.param(m(SPO2, 1.01, "1"), "spo2_percent", "0-100", id="spo2=1.01"),
    pytest.param(m(TEMP, 114, "[degF]"), "temperature_celsius", "25-45", id="temperature=114F"),
    pytest.param(m(TEMP, 0, "K"), "temperature_celsius", "25-45", id="temperature=0K"),
    pytest.param(
        m(WBC, 500.01, "K/uL"), "white_cell_count_10e9_per_l", "0-500", id="white_cell_count=K/uL"
    ),
    pytest.param(m(PACO2, 0.66, "kPa"), "paco2_mmhg", "5-200", id="paco2=0.66kPa"),  # 4.95
    pytest.param(m(PACO2, 26.7, "kPa"), "paco2_mmhg", "5-200", id="paco2=26.7kPa"),  # 200.27
]


@pytest.mark.parametrize("measurement", AT_LIMITS)
def test_a_value_at_the_limit_is_possible(measurement: Measurement) -> None:
    cleaned = clean(measurement)
    assert cleaned.valid + cleaned.artifacts == 1


@pytest.mark.parametrize(("measurement", "field", "limits"), BEYOND_LIMITS)
def test_a_value_beyond_the_limit_is_impossible(
    measurement: Measurement, field: str, limits: str
) -> None:
    refused = refusal(lambda: clean(measurement))
    assert refused.reason == "impossible_value"
    assert refused.detail.startswith(f"{field}=")
    assert f"range {limits}" in refused.detail


@pytest.mark.parametrize(
    ("systolic", "diastolic", "refused"),
    [
        (m(SYS, 90, "mm[Hg]"), m(DIA, 95, "mm[Hg]"), True),
        (m(SYS, 120, "mm[Hg]"), m(DIA, 17, "kPa"), True),
        (m(SYS, 90, "mm[Hg]"), m(DIA, 90, "mm[Hg]"), False),
        (m(SYS, 0, "mm[Hg]"), m(DIA, 80, "mm[Hg]"), False),  # zeroing: not a real pair
    ],
    ids=["above", "above in kPa", "equal", "systolic zeroing"],
)
def test_a_diastolic_above_the_systolic_is_impossible(
    systolic: Measurement, diastolic: Measurement, refused: bool
) -> None:
    if not refused:
        assert clean(systolic, diastolic).event is not None
        return
    rejection = refusal(lambda: clean(systolic, diastolic))
    assert rejection.reason == "impossible_value"
    assert "diastolic_bp_mmhg" in rejection.detail and "systolic_bp_mmhg" in rejection.detail


@pytest.mark.parametrize("position", [0, 1, 2], ids=["first", "middle", "last"])
def test_one_impossible_value_refuses_the_whole_event(position: int) -> None:
    good = [m(HR, 80, "/min"), m(TEMP, 37, "Cel")]
    event = observed(*good[:position], m(SPO2, 101, "%"), *good[position:])
    before = event.model_dump()
    refused = refusal(lambda: cleaner().clean(event, NOW))
    assert (refused.reason, refused.detail.split(" ")[0]) == (
        "impossible_value",
        "spo2_percent=101",
    )
    assert event.model_dump() == before, "the input event must not be modified"


def test_rejection_message_carries_reason_and_detail() -> None:
    assert str(CleaningRejection("impossible_value", "x=1")) == "impossible_value: x=1"


def test_cleans_a_whole_event_keeping_its_envelope_and_origins() -> None:
    event = observed(
        m(HR, 1.5, "/s", loinc="8867-4"),
        m(TEMP, 98.6, "[degF]", loinc="8310-5"),
        m(None, 0.94, "1", code="SPO2", code_system="99LOCAL"),
        supplemental_oxygen=True,
        consciousness=Consciousness.VOICE,
        device_id="monitor-7",
    )
    cleaned = cleaner().clean(event, NOW)
    recorded: Any = cleaned.event
    assert vitals(cleaned) == {
        "heart_rate_bpm": 90.0,
        "temperature_celsius": 37.0,
        "spo2_percent": 94.0,
        "on_supplemental_oxygen": True,
        "consciousness": Consciousness.VOICE,
    }
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
    assert [(o.parameter, o.loinc, o.code, o.original_value, o.original_unit) for o in
            recorded.origins] == [
        (HR, "8867-4", None, 1.5, "/s"),
        (TEMP, "8310-5", None, 98.6, "[degF]"),
        (SPO2, None, "SPO2", 0.94, "1"),
    ]  # fmt: skip
    assert (recorded.artifacts, recorded.late, cleaned.valid) == ([], False, 3)


# --- artifacts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "reason"),
    [
        (m(HR, 0, "/min"), "probe_off"),
        (m(HR, 0, "/s"), "probe_off"),
        (m(SPO2, 0, "%"), "probe_off"),
        (m(SPO2, 0, "1"), "probe_off"),
        (m(SYS, 0, "mm[Hg]"), "zeroing"),
        (m(DIA, 0, "kPa"), "zeroing"),
        (m(None, "0/0", "mm[Hg]", code="NBP", code_system="99LOCAL"), "zeroing"),
    ],
    ids=lambda x: f"{x.parameter} {x.unit}" if isinstance(x, Measurement) else str(x),
)
def test_a_zero_from_a_detached_or_zeroed_sensor_is_an_artifact(
    measurement: Measurement, reason: str
) -> None:
    cleaned = clean(measurement, m(RR, 16, "/min"))
    recorded: Any = cleaned.event
    assert vitals(cleaned) == {"respiratory_rate_per_min": 16.0}, "an artifact is never a vital"
    assert {(a.value, a.reason) for a in recorded.artifacts} == {(0.0, reason)}
    assert (cleaned.valid, cleaned.artifacts) == (1, len(recorded.artifacts))
    assert len(recorded.origins) == 1 + len(recorded.artifacts), "artifacts keep their origin"


@pytest.mark.parametrize(
    "measurement",
    [
        m(RR, 0, "/min"),
        m(FLOW, 0, "L/min"),
        m(HR, 0.01, "/min"),
        m(SPO2, 1, "%"),
        m(WBC, 0, "10*9/L"),  # a laboratory result is no sensor: 0 is not a detached probe
    ],
    ids=lambda x: f"{x.parameter.value}={x.value:g}",
)
def test_other_low_values_are_valid(measurement: Measurement) -> None:
    assert (clean(measurement).valid, clean(measurement).artifacts) == (1, 0)


def test_an_event_of_artifacts_only_is_still_emitted() -> None:
    cleaned = clean(m(HR, 0, "/min"), m(SPO2, 0, "%"))
    recorded: Any = cleaned.event
    assert vitals(cleaned) == {}
    assert [(a.parameter, a.unit, a.reason) for a in recorded.artifacts] == [
        (HR, "/min", "probe_off"),
        (SPO2, "%", "probe_off"),
    ]


def heart_rates(
    subject: EventCleaner, readings: list[tuple[float, float]], patient: str = "P1"
) -> list[list[str]]:
    """Clean heart rates at (seconds after NOW, value); the artifact reasons of each."""
    reasons = []
    for seconds, value in readings:
        at = NOW + timedelta(seconds=seconds)
        event: Any = subject.clean(observed(m(HR, value, "/min"), at=at, patient_id=patient), at)
        reasons.append([a.reason for a in event.event.artifacts])
    return reasons


def every_minute(until: float, value: float = 72.0) -> list[tuple[float, float]]:
    return [(float(s), value) for s in range(0, int(until), 60)] + [(until, value)]


@pytest.mark.parametrize(
    ("last_seconds", "flat"),
    [(599.0, False), (600.0, False), (600.001, True), (900.0, True)],
)
def test_a_value_repeated_for_longer_than_the_setting_is_a_flat_line(
    last_seconds: float, flat: bool
) -> None:
    reasons = heart_rates(cleaner(flat_line_seconds=600), every_minute(last_seconds))
    assert reasons[-1] == (["flat_line"] if flat else [])
    assert all(r == [] for r in reasons[:-1] if not flat)


def test_a_flat_line_ends_when_the_value_changes_or_after_a_gap() -> None:
    subject = cleaner(flat_line_seconds=600)
    assert heart_rates(subject, every_minute(660))[-1] == ["flat_line"]
    assert heart_rates(subject, [(720, 73), (1321, 73)]) == [[], []], "changed, then a gap"
    run = [(1321.0 + s, 73.0) for s in range(60, 600, 60)]
    older = [(1000.0, 74.0)]  # out of order: neither breaks nor extends the run
    assert heart_rates(subject, [*run, *older, (1921, 73)])[-1] == []
    assert heart_rates(subject, [(1922, 73)]) == [["flat_line"]]


def test_a_flat_line_is_per_patient_and_0_disables_it() -> None:
    subject = cleaner(flat_line_seconds=600)
    assert heart_rates(subject, every_minute(660))[-1] == ["flat_line"]
    assert heart_rates(subject, [(660, 72)], patient="P2") == [[]]
    assert heart_rates(cleaner(flat_line_seconds=0), every_minute(3600))[-1] == []


def test_only_continuously_measured_parameters_can_flat_line() -> None:
    subject = cleaner(flat_line_seconds=60)
    for seconds in (0, 30, 61):
        at = NOW + timedelta(seconds=seconds)
        event = observed(m(SPO2, 98, "%"), m(TEMP, 37, "Cel"), m(RR, 16, "/min"), at=at)
        recorded: Any = subject.clean(event, at).event
    assert [(a.parameter, a.reason) for a in recorded.artifacts] == [(RR, "flat_line")]


def test_laboratory_results_never_flat_line() -> None:
    subject = cleaner(flat_line_seconds=60)
    for seconds in (0, 30, 61, 120):
        at = NOW + timedelta(seconds=seconds)
        event = observed(m(WBC, 7.3, "10*9/L"), m(PACO2, 40, "mm[Hg]"), at=at)
        cleaned = subject.clean(event, at)
    recorded: Any = cleaned.event
    assert recorded.artifacts == []
    assert vitals(cleaned) == {"white_cell_count_10e9_per_l": 7.3, "paco2_mmhg": 40.0}


def test_flat_line_memory_is_bounded() -> None:
    subject = cleaner(flat_line_seconds=600, flat_line_memory=2)
    for patient in ("P1", "P2", "P3"):
        heart_rates(subject, every_minute(540), patient=patient)
    assert len(subject.flat_lines) == 2
    assert heart_rates(subject, [(660, 72)], patient="P1") == [[]], "P1 was forgotten"
    assert heart_rates(subject, [(600, 72), (660, 72)], patient="P3") == [[], ["flat_line"]]


# --- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ahead_seconds", "skew", "refused"),
    [(120.0, 120.0, False), (120.001, 120.0, True), (3600.0, 120.0, True), (1.0, 0.0, True),
     (3600.0, 7200.0, False), (-3600.0, 0.0, False)],
)  # fmt: skip
def test_an_event_from_beyond_the_clock_skew_is_refused(
    ahead_seconds: float, skew: float, refused: bool
) -> None:
    subject = cleaner(max_clock_skew_seconds=skew)
    at = NOW + timedelta(seconds=ahead_seconds)
    for event in (observed(m(HR, 72, "/min"), at=at), admitted(at)):
        if refused:
            rejection = refusal(lambda event=event: subject.clean(event, NOW))
            assert rejection.reason == "future_event"
        else:
            assert subject.clean(event, NOW).event is not None


@pytest.mark.parametrize(
    ("age", "late"),
    [(timedelta(hours=24), False), (timedelta(hours=24, seconds=1), True), (timedelta(0), False)],
)
def test_an_event_older_than_the_state_retention_is_cleaned_and_marked_late(
    age: timedelta, late: bool
) -> None:
    subject = cleaner(state_retention_seconds=86_400)
    cleaned = subject.clean(observed(m(HR, 72, "/min"), at=NOW - age), NOW)
    assert (cleaned.late, cleaned.event.late, cleaned.valid) == (late, late, 1)  # type: ignore[union-attr]


def test_timestamps_come_out_in_utc() -> None:
    berlin = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    recorded: Any = cleaner().clean(observed(m(HR, 72, "/min"), at=berlin), NOW).event
    assert recorded.occurred_at == NOW and recorded.occurred_at.utcoffset() == timedelta(0)


# --- other events -------------------------------------------------------------------------------


def admitted(at: datetime = NOW) -> PatientAdmitted:
    return PatientAdmitted(
        event_id=uuid4(), occurred_at=at, recorded_at=at, source="ehr", patient_id="P1", ward="W"
    )


def test_other_events_pass_through_unchanged() -> None:
    scale = Spo2ScaleSet(
        event_id=uuid4(), occurred_at=NOW, recorded_at=NOW, source="ehr", patient_id="P1", scale=2
    )
    subject = cleaner()
    for event in (admitted(), scale):
        assert subject.clean(event, NOW) == Cleaned(event)
        assert subject.clean(event, NOW).dropped == "event_id"


# --- duplicates ---------------------------------------------------------------------------------


def test_drops_a_repeated_event_id() -> None:
    subject, event = cleaner(), observed(m(HR, 72, "/min"))
    assert subject.clean(event, NOW).valid == 1
    assert subject.clean(event, NOW) == Cleaned(None, dropped="event_id")


@pytest.mark.parametrize(
    ("retry", "duplicate"),
    [
        ({}, True),  # the gateway retried with a new event id
        ({"measurements": [m(HR, 1.2, "/s")]}, True),  # the same value in another unit
        ({"measurements": [m(HR, 75, "/min")]}, False),  # a correction
        ({"measurements": [m(HR, 72, "/min"), m(RR, 16, "/min")]}, False),  # more was observed
        ({"at": NOW + timedelta(seconds=5)}, False),
        ({"device_id": "monitor-2"}, False),
        ({"patient_id": "P2"}, False),
        ({"source": "other-gw"}, False),
        ({"consciousness": Consciousness.ALERT}, False),
    ],
    ids=str,
)
def test_drops_the_same_reading_sent_again_under_a_new_event_id(
    retry: dict[str, Any], duplicate: bool
) -> None:
    subject = cleaner()
    first: dict[str, Any] = {"measurements": [m(HR, 72, "/min")], "device_id": "monitor-1"}
    assert subject.clean(observed(**first), NOW).valid == 1
    again = subject.clean(observed(**(first | retry)), NOW)
    assert again.dropped == ("same_reading" if duplicate else None)


def test_a_refused_event_is_not_remembered_so_a_replay_is_processed() -> None:
    subject = cleaner()
    future = observed(m(HR, 72, "/min"), at=NOW + timedelta(hours=1))
    assert refusal(lambda: subject.clean(future, NOW)).reason == "future_event"
    later = NOW + timedelta(hours=1)  # the sender's clock was right after all: replayed later
    assert subject.clean(future, later).valid == 1
    impossible = observed(m(HR, 400, "/min"))
    assert refusal(lambda: subject.clean(impossible, NOW)).reason == "impossible_value"
    retried = observed(m(HR, 400, "/min"))  # the same reading again, new id: refused again
    assert refusal(lambda: subject.clean(retried, NOW)).reason == "impossible_value"
    assert refusal(lambda: subject.clean(impossible, NOW)).reason == "impossible_value"


def test_dedupe_windows_are_bounded_and_forget_the_oldest() -> None:
    window = DedupeWindow(3)
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    for key in (a, b, c):
        window.remember(key)
    assert window.seen(a)  # seen again: now the most recent
    window.remember(d)  # evicts b, the oldest
    assert (window.seen(a), window.seen(b), window.seen(c), window.seen(d)) == (
        True,
        False,
        True,
        True,
    )
    assert len(window) == 3
    readings = ReadingWindow(2)
    for n in range(1000):
        readings.remember(("gw", f"P{n}", None, NOW), {"heart_rate": 72.0})
    assert len(readings) == 2
    assert readings.seen(("gw", "P999", None, NOW), {"heart_rate": 72.0})
    assert not readings.seen(("gw", "P0", None, NOW), {"heart_rate": 72.0})


def test_the_cleaner_dedupe_memory_is_bounded_by_the_setting() -> None:
    subject = cleaner(dedupe_window_events=5)
    events = [observed(m(HR, 72, "/min"), patient_id=f"P{n}") for n in range(50)]
    for event in events:
        subject.clean(event, NOW)
    assert (len(subject.event_ids), len(subject.readings)) == (5, 5)
    assert subject.clean(events[0], NOW).valid == 1, "forgotten: processed again"
    assert subject.clean(events[-1], NOW).dropped == "event_id"
