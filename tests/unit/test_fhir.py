"""FHIR R4 mapping: Observations and Encounters as an EHR or a monitor gateway sends them become
inbound items that validate against the contract; everything else is refused at its element."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from schemas.codec import decode_python
from schemas.topics import EVENTS_RAW
from services.ingest.fhir import (
    bundle_response,
    informational_outcome,
    map_bundle,
    map_resource,
    operation_outcome,
)
from services.ingest.mapping import MappingError

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
AT = datetime(2025, 3, 1, 11, 58, tzinfo=timezone(timedelta(hours=1)))
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}
LABORATORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}
ASKED_UNKNOWN = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-performed",
            "display": "Not Performed",
        }
    ]
}


def observation(code: str, display: str, **value: Any) -> dict[str, Any]:
    """A vital-signs Observation as a bedside monitor gateway posts it."""
    return {
        "resourceType": "Observation",
        "id": "obs-5521",
        "meta": {
            "versionId": "1",
            "lastUpdated": "2025-03-01T11:58:03Z",
            "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
        },
        "status": "final",
        "category": [VITAL_SIGNS],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": "Patient/MRN-0042", "display": "Jane Doe"},
        "effectiveDateTime": "2025-03-01T11:58:00+01:00",
        "performer": [{"reference": "Practitioner/nurse-17"}],
        "device": {"reference": "Device/MON-7B-04", "display": "Bedside monitor 7B-04"},
        **value,
    }


def lab_result(code: str, display: str, **value: Any) -> dict[str, Any]:
    """A laboratory Observation as an EHR posts it: category "laboratory", no vital-signs profile
    and no device, a specimen, a reference range and an interpretation."""
    resource = observation(code, display, **value)
    del resource["device"], resource["meta"]["profile"]
    return {
        **resource,
        "id": "lab-0815",
        "category": [LABORATORY],
        "issued": "2025-03-01T12:40:00+01:00",
        "performer": [{"reference": "Organization/haematology-lab"}],
        "specimen": {"reference": "Specimen/blood-77"},
        "interpretation": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": "H",
                    }
                ]
            }
        ],
        "referenceRange": [{"low": {"value": 4, "unit": "10*9/L"}, "text": "4-11"}],
    }


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": code}}


def blood_pressure(**component_values: dict[str, Any]) -> dict[str, Any]:
    return {
        **observation("85354-9", "Blood pressure panel with all children optional"),
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic"}]},
                **component_values.get("systolic", quantity(128, "mmHg", "mm[Hg]")),
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic"}]},
                **component_values.get("diastolic", quantity(84, "mmHg", "mm[Hg]")),
            },
        ],
    }


def contract_event(item: dict[str, Any]) -> Any:
    """The item as ingest stamps it, validated against the events.raw contract."""
    stamped = {**item, "event_id": str(uuid4()), "recorded_at": NOW, "source": "ehr"}
    return decode_python(EVENTS_RAW, stamped)


def one_item(resource: dict[str, Any]) -> dict[str, Any]:
    mapped = map_resource(resource)
    assert mapped.note is None
    assert len(mapped.items) == 1
    contract_event(mapped.items[0])
    return mapped.items[0]


def refusal(resource: Any) -> MappingError:
    with pytest.raises(MappingError) as refused:
        map_resource(resource)
    return refused.value


# --- Observation: what each vital sign becomes ------------------------------------------------


def measured(parameter: str, value: float, unit: str, loinc: str) -> dict[str, Any]:
    return {"parameter": parameter, "value": value, "unit": unit, "loinc": loinc}


@pytest.mark.parametrize(
    ("resource", "measurement", "supplemental_oxygen"),
    [
        (
            observation("8867-4", "Heart rate", **quantity(72, "beats/minute", "/min")),
            measured("heart_rate", 72.0, "/min", "8867-4"),
            None,
        ),
        (
            observation("9279-1", "Respiratory rate", **quantity(18, "breaths/minute", "/min")),
            measured("respiratory_rate", 18.0, "/min", "9279-1"),
            None,
        ),
        (
            observation("2708-6", "Oxygen saturation in Arterial blood", **quantity(97, "%", "%")),
            measured("spo2", 97.0, "%", "2708-6"),
            None,
        ),
        (
            observation("59408-5", "SpO2 by Pulse oximetry", **quantity(94.5, "%", "%")),
            measured("spo2", 94.5, "%", "59408-5"),
            None,
        ),
        (
            observation("8310-5", "Body temperature", **quantity(100.4, "degF", "[degF]")),
            measured("temperature", 100.4, "[degF]", "8310-5"),
            None,
        ),
        (
            observation("3151-8", "Inhaled oxygen flow rate", **quantity(2, "L/min", "L/min")),
            measured("oxygen_flow", 2.0, "L/min", "3151-8"),
            True,
        ),
        (
            observation("3151-8", "Inhaled oxygen flow rate", **quantity(0, "L/min", "L/min")),
            measured("oxygen_flow", 0.0, "L/min", "3151-8"),
            False,
        ),
        (
            observation("3150-0", "Inhaled oxygen concentration", **quantity(28, "%", "%")),
            measured("fio2", 28.0, "%", "3150-0"),
            True,
        ),
        (
            observation("3150-0", "Inhaled oxygen concentration", **quantity(0.21, "1", "1")),
            measured("fio2", 0.21, "1", "3150-0"),
            False,
        ),
    ],
    ids=["hr", "rr", "spo2-2708-6", "spo2-59408-5", "temp-degF", "o2-2", "o2-0", "fio2-28", "air"],
)
def test_vital_sign_becomes_one_measurement(
    resource: dict[str, Any], measurement: dict[str, Any], supplemental_oxygen: bool | None
) -> None:
    expected = {
        "kind": "VitalSignsObserved",
        "occurred_at": AT,
        "patient_id": "MRN-0042",
        "device_id": "MON-7B-04",
        "measurements": [measurement],
    }
    if supplemental_oxygen is not None:
        expected["supplemental_oxygen"] = supplemental_oxygen
    assert one_item(resource) == expected


@pytest.mark.parametrize(
    ("resource", "measurement"),
    [
        (
            lab_result("6690-2", "Leukocytes [#/volume] in Blood by Automated count",
                       **quantity(14.2, "10^9/L", "10*9/L")),
            measured("white_cell_count", 14.2, "10*9/L", "6690-2"),
        ),
        (
            lab_result("26464-8", "Leukocytes [#/volume] in Blood",
                       **quantity(3.1, "x10^3/uL", "10*3/uL")),
            measured("white_cell_count", 3.1, "10*3/uL", "26464-8"),
        ),
        (
            lab_result("804-5", "Leukocytes [#/volume] in Blood by Manual count",
                       **quantity(8, "/nL", "/nL")),
            measured("white_cell_count", 8.0, "/nL", "804-5"),
        ),
        (
            lab_result("6690-2", "WBC", valueQuantity={"value": 9.9, "unit": "K/uL"}),
            measured("white_cell_count", 9.9, "K/uL", "6690-2"),  # no UCUM code: the unit
        ),
        (
            lab_result("2019-8", "Carbon dioxide [Partial pressure] in Arterial blood",
                       **quantity(30, "mmHg", "mm[Hg]")),
            measured("paco2", 30.0, "mm[Hg]", "2019-8"),
        ),
        (
            lab_result("2019-8", "pCO2 arterial", **quantity(5.3, "kPa", "kPa")),
            measured("paco2", 5.3, "kPa", "2019-8"),
        ),
    ],
    ids=["wbc-6690-2", "wbc-26464-8", "wbc-804-5", "wbc-unit-only", "paco2-mmHg", "paco2-kPa"],
)  # fmt: skip
def test_laboratory_observation_becomes_one_measurement(
    resource: dict[str, Any], measurement: dict[str, Any]
) -> None:
    assert one_item(resource) == {
        "kind": "VitalSignsObserved",
        "occurred_at": AT,
        "patient_id": "MRN-0042",
        "measurements": [measurement],
    }


@pytest.mark.parametrize(
    "category",
    [[LABORATORY], [VITAL_SIGNS], [LABORATORY, VITAL_SIGNS], None],
    ids=["laboratory", "vital-signs", "both", "none"],
)
def test_the_code_decides_never_the_category(category: list[dict[str, Any]] | None) -> None:
    resource = lab_result("6690-2", "WBC", **quantity(14.2, "10^9/L", "10*9/L"))
    if category is None:
        del resource["category"]
    else:
        resource["category"] = category
    assert one_item(resource)["measurements"] == [
        measured("white_cell_count", 14.2, "10*9/L", "6690-2")
    ]
    heart_rate = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    heart_rate["category"] = [LABORATORY]
    assert one_item(heart_rate)["measurements"] == [measured("heart_rate", 72.0, "/min", "8867-4")]


@pytest.mark.parametrize(
    ("change", "note"),
    [
        ({"status": "preliminary"}, "status preliminary"),
        ({"status": "registered"}, "status registered"),
        ({"valueQuantity": None, "dataAbsentReason": ASKED_UNKNOWN}, "dataAbsentReason"),
    ],
    ids=["preliminary", "registered", "data-absent"],
)
def test_a_laboratory_result_not_final_or_absent_records_nothing(
    change: dict[str, Any], note: str
) -> None:
    resource = {**lab_result("2019-8", "pCO2", **quantity(30, "mmHg", "mm[Hg]")), **change}
    mapped = map_resource({k: v for k, v in resource.items() if v is not None})
    assert mapped.items == []
    assert mapped.note is not None and note in mapped.note


def test_a_laboratory_result_with_a_comparator_is_refused() -> None:
    resource = lab_result("6690-2", "WBC", **quantity(0.5, "10^9/L", "10*9/L"))
    resource["valueQuantity"]["comparator"] = "<"
    error = refusal(resource)
    assert (error.location, error.code) == ("Observation.valueQuantity.comparator", "not-supported")


def test_mapped_names_the_resource_and_its_version() -> None:
    mapped = map_resource(observation("8867-4", "Heart rate", **quantity(72, "/min", "/min")))
    assert (mapped.resource_type, mapped.resource_id, mapped.version_id) == (
        "Observation",
        "obs-5521",
        "1",
    )


def test_unit_falls_back_to_quantity_unit_without_ucum_code() -> None:
    resource = observation("8867-4", "Heart rate", valueQuantity={"value": 61, "unit": "/min"})
    assert one_item(resource)["measurements"] == [measured("heart_rate", 61.0, "/min", "8867-4")]


def test_blood_pressure_panel_becomes_systolic_and_diastolic() -> None:
    assert one_item(blood_pressure())["measurements"] == [
        measured("systolic_bp", 128.0, "mm[Hg]", "8480-6"),
        measured("diastolic_bp", 84.0, "mm[Hg]", "8462-4"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"coding": [{"system": "urn:wardflow:acvpu", "code": "V"}]}, "V"),
        ({"text": "Voice"}, "V"),
        ({"coding": [{"system": "http://snomed.info/sct", "display": "Confusion"}]}, "C"),
        ({"coding": [{"system": "http://loinc.org", "code": "LA9340-6", "display": "Alert"}]}, "A"),
    ],
    ids=["code-V", "text-Voice", "display-Confusion", "loinc-answer-Alert"],
)
def test_level_of_consciousness_becomes_acvpu(value: dict[str, Any], expected: str) -> None:
    resource = observation("67775-7", "Level of responsiveness", valueCodeableConcept=value)
    item = one_item(resource)
    assert item["consciousness"] == expected
    assert "measurements" not in item


def test_snomed_acvpu_observation_is_read() -> None:
    resource = observation("x", "ACVPU", valueCodeableConcept={"text": "Pain"})
    resource["code"] = {
        "coding": [{"system": "http://snomed.info/sct", "code": "1104441000000107"}]
    }
    assert one_item(resource)["consciousness"] == "P"


def test_consciousness_outside_acvpu_is_refused() -> None:
    resource = observation("67775-7", "Level", valueCodeableConcept={"text": "Drowsy"})
    error = refusal(resource)
    assert (error.location, error.code) == ("Observation.valueCodeableConcept", "value")


# --- Observation: status and absent values ----------------------------------------------------


@pytest.mark.parametrize("status", ["final", "amended", "corrected"])
def test_recorded_statuses_produce_the_vital_sign(status: str) -> None:
    resource = {**observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))}
    resource["status"] = status
    assert one_item(resource)["measurements"][0]["value"] == 72.0


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "preliminary"])
def test_unrecorded_statuses_produce_nothing_and_say_why(status: str) -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    resource["status"] = status
    mapped = map_resource(resource)
    assert mapped.items == []
    assert mapped.note == f"status {status}: no vital sign recorded"


def test_data_absent_observation_produces_nothing_never_zero() -> None:
    resource = observation("9279-1", "Respiratory rate", dataAbsentReason=ASKED_UNKNOWN)
    mapped = map_resource(resource)
    assert mapped.items == []
    assert mapped.note is not None and "dataAbsentReason" in mapped.note


def test_data_absent_component_leaves_out_only_that_value() -> None:
    resource = blood_pressure(diastolic={"dataAbsentReason": ASKED_UNKNOWN})
    measurements = one_item(resource)["measurements"]
    assert measurements == [measured("systolic_bp", 128.0, "mm[Hg]", "8480-6")]
    assert all(m["value"] != 0 for m in measurements)


def test_blood_pressure_with_both_components_absent_produces_nothing() -> None:
    absent = {"dataAbsentReason": ASKED_UNKNOWN}
    mapped = map_resource(blood_pressure(systolic=absent, diastolic=absent))
    assert mapped.items == [] and mapped.note is not None


def test_value_and_data_absent_reason_together_are_refused() -> None:
    resource = observation(
        "8867-4", "Heart rate", **quantity(72, "/min", "/min"), dataAbsentReason=ASKED_UNKNOWN
    )
    error = refusal(resource)
    assert (error.location, error.code) == ("Observation.dataAbsentReason", "invalid")


# --- Observation: subject, time, device -------------------------------------------------------


def test_mrn_comes_from_subject_identifier_before_the_reference() -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    resource["subject"] = {
        "reference": "Patient/f001",
        "identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "MRN-7731"},
    }
    assert one_item(resource)["patient_id"] == "MRN-7731"


@pytest.mark.parametrize(
    ("effective", "expected"),
    [
        (
            {"effectivePeriod": {"start": "2025-03-01T10:58:00Z"}},
            datetime(2025, 3, 1, 10, 58, tzinfo=UTC),
        ),
        (
            {"effectiveInstant": "2025-03-01T10:58:00.250Z"},
            datetime(2025, 3, 1, 10, 58, 0, 250000, tzinfo=UTC),
        ),
    ],
    ids=["period-start", "instant"],
)
def test_effective_period_start_or_instant_is_the_time(
    effective: dict[str, Any], expected: datetime
) -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    del resource["effectiveDateTime"]
    assert one_item({**resource, **effective})["occurred_at"] == expected


def test_observation_without_device_has_no_device_id() -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    del resource["device"]
    assert "device_id" not in one_item(resource)


@pytest.mark.parametrize(
    ("remove", "location", "code"),
    [
        ("subject", "Observation.subject", "required"),
        ("effectiveDateTime", "Observation.effective[x]", "required"),
        ("code", "Observation.code", "required"),
        ("status", "Observation.status", "required"),
        ("valueQuantity", "Observation.valueQuantity", "required"),
    ],
)
def test_missing_element_is_named(remove: str, location: str, code: str) -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    del resource[remove]
    error = refusal(resource)
    assert (error.location, error.code) == (location, code)


@pytest.mark.parametrize(
    ("change", "location", "code"),
    [
        ({"effectiveDateTime": "2025-03-01T11:58:00"}, "Observation.effectiveDateTime", "value"),
        ({"effectiveDateTime": "2025-03-01"}, "Observation.effectiveDateTime", "value"),
        ({"status": "done"}, "Observation.status", "value"),
        (
            {"valueQuantity": {"value": "high", "code": "/min"}},
            "Observation.valueQuantity.value",
            "value",
        ),
        (
            {"valueQuantity": {"value": True, "code": "/min"}},
            "Observation.valueQuantity.value",
            "value",
        ),
        ({"valueQuantity": {"value": 72}}, "Observation.valueQuantity.code", "required"),
        (
            {"valueQuantity": {"value": 72, "code": "/min", "comparator": ">"}},
            "Observation.valueQuantity.comparator",
            "not-supported",
        ),
        ({"subject": "Patient/MRN-0042"}, "Observation.subject", "invalid"),
        ({"subject": {"reference": "Group/ward-7b"}}, "Observation.subject.reference", "value"),
        ({"heartRate": 72}, "Observation.heartRate", "invalid"),
        (
            {"category": [{"coding": [{"code": 7}]}]},
            "Observation.category[0].coding[0].code",
            "invalid",
        ),
    ],
    ids=[
        "no-tz",
        "date-only",
        "status",
        "value-text",
        "value-bool",
        "no-unit",
        "comparator",
        "subject-text",
        "group",
        "extra",
        "nested",
    ],
)
def test_invalid_element_is_named(change: dict[str, Any], location: str, code: str) -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    error = refusal({**resource, **change})
    assert (error.location, error.code) == (location, code)


def test_timezone_less_time_is_refused_as_such() -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    error = refusal({**resource, "effectiveDateTime": "2025-03-01T11:58:00"})
    assert error.message == "must include a timezone"


def test_unknown_code_is_not_supported() -> None:
    resource = observation(
        "2339-0", "Glucose [Mass/volume] in Blood", **quantity(5, "mg/dL", "mg/dL")
    )
    error = refusal(resource)
    assert (error.location, error.code, error.message) == (
        "Observation.code",
        "not-supported",
        "no vital-sign LOINC code wardflow reads",
    )


def test_code_outside_loinc_system_is_not_read() -> None:
    resource = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
    resource["code"] = {"coding": [{"system": "urn:local", "code": "8867-4"}]}
    assert refusal(resource).code == "not-supported"


# --- Encounter --------------------------------------------------------------------------------


def place(reference: str, status: str, kind: str | None, **period: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"location": {"reference": reference}, "status": status}
    if kind is not None:
        entry["physicalType"] = {"coding": [{"system": PHYSICAL_TYPE, "code": kind}]}
    if period:
        entry["period"] = period
    return entry


def encounter(status: str, locations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """An inpatient Encounter as the EHR's FHIR interface posts it."""
    return {
        "resourceType": "Encounter",
        "id": "enc-1001",
        "meta": {"versionId": "4", "lastUpdated": "2025-03-01T12:00:00Z"},
        "identifier": [{"system": "urn:oid:1.2.36.1.4444.2.1", "value": "V100023"}],
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "subject": {
            "reference": "Patient/pat-77",
            "identifier": {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-0042"},
            "display": "Jane Doe",
        },
        "period": {"start": "2025-03-01T09:30:00+01:00"},
        "location": locations,
        **extra,
    }


START = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
WARD_7B = place("Location/WARD-7B", "active", "wa", start="2025-03-01T09:30:00+01:00")
BED_7B_04 = place("Location/BED-7B-04", "active", "bd", start="2025-03-01T09:30:00+01:00")
LEFT_7B = place(
    "Location/WARD-7B",
    "completed",
    "wa",
    start="2025-03-01T09:30:00+01:00",
    end="2025-03-01T11:00:00Z",
)
LEFT_BED_7B_04 = place("Location/BED-7B-04", "completed", "bd", end="2025-03-01T11:00:00Z")
ICU = place("Location/ICU", "active", "wa", start="2025-03-01T11:05:00Z")
ICU_BED_2 = place("Location/BED-ICU-02", "active", "bd", start="2025-03-01T11:05:00Z")
ICU_ROOM = place("Location/ROOM-ICU-A", "active", "ro", start="2025-03-01T11:05:00Z")
WHO = {"patient_id": "MRN-0042", "encounter_id": "enc-1001"}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            encounter("in-progress", [WARD_7B, BED_7B_04]),
            {
                "kind": "PatientAdmitted",
                "occurred_at": START,
                "ward": "WARD-7B",
                "bed": "BED-7B-04",
            },
        ),
        (
            encounter("in-progress", [LEFT_7B, LEFT_BED_7B_04, ICU, ICU_ROOM, ICU_BED_2]),
            {
                "kind": "PatientTransferred",
                "occurred_at": datetime(2025, 3, 1, 11, 5, tzinfo=UTC),
                "from_ward": "WARD-7B",
                "from_bed": "BED-7B-04",
                "ward": "ICU",
                "bed": "BED-ICU-02",
            },
        ),
        (
            encounter(
                "finished",
                [LEFT_7B, LEFT_BED_7B_04],
                period={"start": "2025-03-01T09:30:00+01:00", "end": "2025-03-04T10:00:00Z"},
            ),
            {
                "kind": "PatientDischarged",
                "occurred_at": datetime(2025, 3, 4, 10, tzinfo=UTC),
                "ward": "WARD-7B",
            },
        ),
        (
            encounter("entered-in-error", [WARD_7B, BED_7B_04]),
            {
                "kind": "AdmissionCancelled",
                "occurred_at": datetime(2025, 3, 1, 12, tzinfo=UTC),
                "ward": "WARD-7B",
                "bed": "BED-7B-04",
            },
        ),
        (
            encounter("cancelled", [WARD_7B]),
            {
                "kind": "AdmissionCancelled",
                "occurred_at": datetime(2025, 3, 1, 12, tzinfo=UTC),
                "ward": "WARD-7B",
            },
        ),
        (
            encounter(
                "arrived", [place("Location/ED", "active", None)], **{"class": {"code": "EMER"}}
            ),
            {"kind": "PatientRegistered", "occurred_at": START, "ward": "ED"},
        ),
        (
            encounter("planned", [place("Location/WARD-7B", "reserved", "wa")]),
            {"kind": "PatientRegistered", "occurred_at": START, "ward": "WARD-7B"},
        ),
        (
            encounter("triaged", []),
            {"kind": "PatientRegistered", "occurred_at": START},
        ),
    ],
    ids=[
        "admit",
        "transfer",
        "discharge",
        "entered-in-error",
        "cancelled",
        "arrived",
        "planned",
        "triaged",
    ],
)
def test_encounter_becomes_admission_event(
    resource: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert one_item(resource) == {**expected, **WHO}


def test_encounter_id_falls_back_to_first_identifier() -> None:
    resource = encounter("in-progress", [WARD_7B])
    del resource["id"]
    assert one_item(resource)["encounter_id"] == "V100023"


def test_transfer_comes_from_the_ward_left_last() -> None:
    left_ed = place("Location/ED", "completed", None, end="2025-03-01T09:30:00+01:00")
    item = one_item(encounter("in-progress", [LEFT_7B, left_ed, ICU]))
    assert (item["from_ward"], item["ward"]) == ("WARD-7B", "ICU")


def test_transfer_without_location_start_uses_last_updated() -> None:
    icu = place("Location/ICU", "active", "wa")
    item = one_item(encounter("in-progress", [LEFT_7B, icu]))
    assert item["occurred_at"] == datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("resource", "location", "code"),
    [
        (encounter("in-progress", []), "Encounter.location", "required"),
        (encounter("in-progress", [ICU_ROOM]), "Encounter.location", "required"),
        (encounter("finished", [LEFT_7B]), "Encounter.period.end", "required"),
        (
            encounter(
                "finished",
                [],
                period={"start": "2025-03-01T09:30:00Z", "end": "2025-03-02T09:30:00Z"},
            ),
            "Encounter.location",
            "required",
        ),
        (encounter("in-progress", [WARD_7B], period=None), "Encounter.period.start", "required"),
        (
            encounter("in-progress", [WARD_7B], period={"start": "2025-03-01T09:30:00"}),
            "Encounter.period.start",
            "value",
        ),
        (encounter("in-progress", [WARD_7B], subject=None), "Encounter.subject", "required"),
        (
            {**encounter("in-progress", [WARD_7B]), "status": "admitted"},
            "Encounter.status",
            "value",
        ),
        (
            encounter("in-progress", [place("Location/WARD-7B", "occupied", "wa")]),
            "Encounter.location[0].status",
            "value",
        ),
        (
            encounter("in-progress", [{"status": "active"}]),
            "Encounter.location[0].location",
            "required",
        ),
        (encounter("in-progress", [WARD_7B], **{"class": None}), "Encounter.class", "required"),
    ],
    ids=[
        "no-ward",
        "room-only",
        "no-end",
        "discharge-no-ward",
        "no-start",
        "start-no-tz",
        "no-subject",
        "status",
        "location-status",
        "location-ref",
        "class",
    ],
)
def test_encounter_refusal_names_the_element(
    resource: dict[str, Any], location: str, code: str
) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    error = refusal(resource)
    assert (error.location, error.code) == (location, code)


@pytest.mark.parametrize("status", ["onleave", "unknown"])
def test_encounter_statuses_without_an_admission_event_produce_nothing(status: str) -> None:
    mapped = map_resource(encounter(status, [WARD_7B]))
    assert mapped.items == [] and mapped.note == f"status {status}: no admission event"


# --- resources wardflow does not read ---------------------------------------------------------


def test_patient_resource_is_not_supported() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "pat-77",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-0042"}],
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "birthDate": "1961-07-14",
    }
    error = refusal(patient)
    assert (error.location, error.code) == ("Patient", "not-supported")


@pytest.mark.parametrize("body", [[], "Observation", {"status": "final"}, {"resourceType": 7}])
def test_body_without_resource_type_is_refused(body: Any) -> None:
    assert refusal(body).location == "resourceType"


# --- Bundles ----------------------------------------------------------------------------------

HEART_RATE = observation("8867-4", "Heart rate", **quantity(72, "/min", "/min"))
BAD_SPO2 = observation("59408-5", "SpO2", valueQuantity={"value": "ninety", "code": "%"})


def entry(resource: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid4()}",
        "resource": resource,
        "request": {"method": method, "url": resource["resourceType"]},
    }


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": "b-1", "type": kind, "entry": list(entries)}


def test_transaction_names_the_bad_entry() -> None:
    results = map_bundle(bundle("transaction", entry(HEART_RATE), entry(BAD_SPO2)))
    assert [r.index for r in results] == [0, 1]
    assert results[0].error is None and results[0].mapped is not None
    contract_event(results[0].mapped.items[0])
    error = results[1].error
    assert error is not None and results[1].mapped is None
    assert (error.location, error.code) == ("Bundle.entry[1].resource.valueQuantity.value", "value")


def test_batch_entries_stand_alone() -> None:
    admit = encounter("in-progress", [WARD_7B])
    results = map_bundle(
        bundle(
            "batch",
            entry(admit, "PUT"),
            entry(HEART_RATE, "DELETE"),
            entry({"resourceType": "Patient", "id": "pat-77"}),
            {"request": {"method": "POST", "url": "Observation"}},
        )
    )
    assert results[0].mapped is not None
    assert contract_event(results[0].mapped.items[0]).kind == "PatientAdmitted"
    located = [(r.error.location, r.error.code) for r in results[1:] if r.error]
    assert located == [
        ("Bundle.entry[1].request.method", "not-supported"),
        ("Bundle.entry[2].resource", "not-supported"),
        ("Bundle.entry[3].resource", "required"),
    ]


@pytest.mark.parametrize(
    ("body", "location", "code"),
    [
        (bundle("collection", entry(HEART_RATE)), "Bundle.type", "not-supported"),
        ({"resourceType": "Bundle", "entry": []}, "Bundle.type", "required"),
        ({"resourceType": "Bundle", "type": "batch", "entry": {}}, "Bundle.entry", "invalid"),
        (HEART_RATE, "resourceType", "invalid"),
    ],
)
def test_bundle_itself_refused(body: dict[str, Any], location: str, code: str) -> None:
    with pytest.raises(MappingError) as refused:
        map_bundle(body)
    assert (refused.value.location, refused.value.code) == (location, code)


def test_entry_without_request_is_refused() -> None:
    results = map_bundle(bundle("batch", {"resource": HEART_RATE}))
    assert results[0].error is not None
    assert results[0].error.location == "Bundle.entry[0].request"


# --- no PHI in items or errors ----------------------------------------------------------------

PHI = ("Jane", "Doe", "1961")


def with_names(resource: dict[str, Any]) -> dict[str, Any]:
    named = copy.deepcopy(resource)
    named["subject"] = {"reference": "Patient/MRN-0042", "display": "Jane Doe"}
    named["performer"] = [{"reference": "Patient/MRN-0042", "display": "Jane Doe"}]
    return named


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"effectiveDateTime": "Jane Doe"},
        {"valueQuantity": {"value": "Jane Doe", "code": "/min"}},
        {"subject": {"reference": "Patient/Jane Doe", "display": "Jane Doe"}},
        {"subject": {"display": "Jane Doe"}},
        {"status": "Jane Doe"},
        {"Jane Doe": 1},
        {"note": [{"text": 1961}]},
        {"contained": [{"resourceType": "Patient", "birthDate": "1961-14-07"}]},
    ],
    ids=[
        "mapped",
        "time",
        "value",
        "reference",
        "display-only",
        "status",
        "element",
        "type",
        "contained",
    ],
)
def test_names_never_reach_items_or_errors(change: dict[str, Any]) -> None:
    resource = {**with_names(HEART_RATE), **change}
    try:
        shown = repr(map_resource(resource))
    except MappingError as error:
        shown = f"{error} {error.location} {error.message} {operation_outcome([error])}"
    assert not [word for word in PHI if word in shown]


def test_names_never_reach_bundle_errors() -> None:
    results = map_bundle(
        bundle(
            "transaction",
            entry(with_names(HEART_RATE)),
            entry({**BAD_SPO2, "subject": {"display": "Jane Doe"}}),
        )
    )
    assert not [word for word in PHI if word in repr(results)]


# --- OperationOutcome and response Bundles ----------------------------------------------------


def test_operation_outcome_is_an_r4_resource() -> None:
    errors = [
        MappingError("Observation.status", "required", "is required"),
        MappingError("Bundle.entry[1].resource.code", "not-supported", "no vital-sign LOINC code"),
        MappingError("(broker)", "throttled", "too many events"),
        MappingError("(body)", "invalid_json", "not valid JSON"),
    ]
    outcome = operation_outcome(errors)
    OperationOutcome.model_validate(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"], i["expression"]) for i in outcome["issue"]] == [
        ("error", "required", ["Observation.status"]),
        ("error", "not-supported", ["Bundle.entry[1].resource.code"]),
        ("error", "throttled", ["(broker)"]),
        ("error", "processing", ["(body)"]),
    ]
    assert outcome["issue"][0]["diagnostics"] == "is required"
    json.dumps(outcome)


def test_operation_outcome_severity_is_chosen() -> None:
    outcome = operation_outcome([MappingError("Observation", "value", "odd")], severity="warning")
    assert outcome["issue"][0]["severity"] == "warning"


def test_operation_outcome_needs_an_issue() -> None:
    with pytest.raises(ValueError):
        operation_outcome([])


def test_informational_outcome_is_an_r4_resource() -> None:
    outcome = informational_outcome("status entered-in-error: no vital sign recorded")
    OperationOutcome.model_validate(outcome)
    assert outcome["issue"] == [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": "status entered-in-error: no vital sign recorded",
        }
    ]


@pytest.mark.parametrize(
    ("kind", "response_type"),
    [("transaction", "transaction-response"), ("batch", "batch-response")],
)
def test_bundle_response_is_an_r4_bundle(kind: str, response_type: str) -> None:
    refused = operation_outcome(
        [MappingError("Bundle.entry[1].resource.code", "not-supported", "x")]
    )
    response = bundle_response(
        kind,
        [
            ("201 Created", informational_outcome("recorded 1 event(s)")),
            ("200 OK", None),
            ("422 Unprocessable Entity", refused),
        ],
    )
    parsed = Bundle.model_validate(response)
    assert parsed.type == response_type
    assert [e["response"]["status"] for e in response["entry"]] == [
        "201 Created",
        "200 OK",
        "422 Unprocessable Entity",
    ]
    assert "outcome" not in response["entry"][1]["response"]
    assert response["entry"][2]["response"]["outcome"] == refused


@pytest.mark.parametrize(("kind", "status"), [("collection", "200 OK"), ("batch", "OK")])
def test_bundle_response_refuses_what_fhir_does_not_allow(kind: str, status: str) -> None:
    with pytest.raises(ValueError):
        bundle_response(kind, [(status, None)])
