"""Ingest rules: who is sending, and what of a request becomes contract events (all or nothing)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from schemas.admissions import PatientAdmitted
from schemas.beds import BedStatusReported
from schemas.observations import VitalSignsObserved
from services.ingest.domain import BatchRefused, Problem, accept, bearer_token, items_of
from services.ingest.guards import pseudonymise
from services.ingest.sources import SourceRegistry, dev_sources

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
KEYS = {"bedside-gw": "k-bedside-0123456789", "ehr": "k-ehr-9876543210"}
SECRET = "SECRET-MRN-123"
PSEUDONYM_KEY = b"k" * 32
REGISTRY = SourceRegistry(dev_sources(KEYS, rate=100.0, burst=100.0))


def authenticate(header: str | None, registry: SourceRegistry = REGISTRY) -> str | None:
    source = registry.by_key(bearer_token(header))
    return source.name if source else None


def vitals(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "VitalSignsObserved",
        "occurred_at": "2025-03-01T11:59:58Z",
        "patient_id": "P1",
        "measurements": [{"parameter": "heart_rate", "value": 80, "unit": "/min"}],
        **overrides,
    }


def admitted(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "PatientAdmitted",
        "occurred_at": "2025-03-01T11:00:00+01:00",
        "patient_id": "P2",
        "ward": "WARD-A",
        **overrides,
    }


def run(body: Any, max_events: int = 10) -> list[Any]:
    source = REGISTRY.by_key(KEYS["bedside-gw"])
    assert source is not None
    return accept(body, source=source, now=NOW, max_events=max_events, pseudonym_key=PSEUDONYM_KEY)


def refusal(body: Any, max_events: int = 10) -> BatchRefused:
    with pytest.raises(BatchRefused) as refused:
        run(body, max_events)
    return refused.value


def fields(refused: BatchRefused) -> list[tuple[int, str]]:
    return [(p.index, p.field) for p in refused.problems]


# --- authenticate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "source"),
    [
        ("Bearer k-bedside-0123456789", "bedside-gw"),
        ("Bearer k-ehr-9876543210", "ehr"),
        ("Bearer k-ehr-9876543210 ", "ehr"),
        ("Bearer k-ehr-987654321", None),
        ("Bearer k-ehr-98765432100", None),
        ("Bearer wrong", None),
        ("Bearer ", None),
        (None, None),
        ("", None),
        ("k-ehr-9876543210", None),
        ("Basic k-ehr-9876543210", None),
        ("Token k-ehr-9876543210", None),
    ],
    ids=[
        "bedside key",
        "ehr key",
        "trailing space",
        "key prefix",
        "key plus a character",
        "wrong key",
        "empty bearer",
        "no header",
        "empty header",
        "no scheme",
        "basic scheme",
        "other scheme",
    ],
)
def test_authenticate_maps_the_bearer_key_to_its_source(
    header: str | None, source: str | None
) -> None:
    assert authenticate(header) == source


def test_authenticate_with_no_keys_configured_lets_nobody_in() -> None:
    assert authenticate("Bearer anything", SourceRegistry([])) is None


def test_authenticate_never_accepts_an_empty_token() -> None:
    misconfigured = SourceRegistry(dev_sources({"misconfigured": ""}, rate=1.0, burst=1.0))
    assert authenticate("Bearer ", misconfigured) is None


# --- accept: shape of the request -----------------------------------------------------------


def test_accepts_a_single_event_object() -> None:
    (event,) = run(vitals())
    assert isinstance(event, VitalSignsObserved)
    assert event.patient_id == pseudonymise("P1", PSEUDONYM_KEY), "the MRN never travels on"
    assert event.recorded_at == NOW
    assert event.source == "bedside-gw"


def test_accepts_a_batch_in_order_with_ingest_stamps() -> None:
    events = run({"events": [vitals(), admitted(), vitals(patient_id="P3")]})
    assert [type(e) for e in events] == [VitalSignsObserved, PatientAdmitted, VitalSignsObserved]
    assert [e.patient_id for e in events] == [
        pseudonymise(mrn, PSEUDONYM_KEY) for mrn in ("P1", "P2", "P3")
    ]
    assert {e.recorded_at for e in events} == {NOW}
    assert {e.source for e in events} == {"bedside-gw"}
    assert events[1].occurred_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def test_accepts_a_bed_status_report() -> None:
    body = {"kind": "BedStatusReported", "occurred_at": "2025-03-01T11:00:00Z", "ward": "ED"}
    (event,) = run({**body, "bed": "ED-01", "status": "cleaning"})
    assert isinstance(event, BedStatusReported)


def test_housekeeping_cannot_report_a_bed_occupied() -> None:
    body = {"kind": "BedStatusReported", "occurred_at": "2025-03-01T11:00:00Z", "ward": "ED"}
    refused = refusal({**body, "bed": "ED-01", "status": "occupied"})
    assert fields(refused) == [(0, "status")]


@pytest.mark.parametrize(
    "body", [{"events": []}, {"events": "many"}, {"events": None}], ids=["empty", "text", "null"]
)
def test_events_must_be_a_non_empty_list(body: Any) -> None:
    refused = refusal(body)
    assert (refused.status, refused.reason) == (422, "invalid_event")
    assert fields(refused) == [(0, "events")]


@pytest.mark.parametrize("body", [[vitals()], "text", 3, None], ids=["list", "text", "int", "null"])
def test_body_must_be_a_json_object(body: Any) -> None:
    refused = refusal(body)
    assert (refused.status, refused.reason) == (422, "invalid_event")
    assert fields(refused) == [(0, "(body)")]


def test_too_many_events_is_413() -> None:
    refused = refusal({"events": [vitals()] * 4}, max_events=3)
    assert (refused.status, refused.reason) == (413, "too_many_events")
    assert fields(refused) == [(0, "events")]
    assert "at most 3" in refused.problems[0].problem


def test_exactly_the_maximum_is_accepted() -> None:
    assert len(run({"events": [vitals()] * 3}, max_events=3)) == 3


def test_items_of_a_single_object_is_that_object() -> None:
    body = vitals()
    assert items_of(body, 1) == [body]


# --- accept: what is wrong with an event ----------------------------------------------------


@pytest.mark.parametrize("field", ["recorded_at", "source"])
def test_fields_owned_by_ingest_are_refused_naming_them(field: str) -> None:
    refused = refusal(vitals(**{field: "2025-03-01T11:59:58Z"}))
    assert fields(refused) == [(0, field)]
    assert "ingest" in refused.problems[0].problem


def test_unknown_field_is_refused_naming_it() -> None:
    refused = refusal({"events": [admitted(), admitted(colour="blue")]})
    assert fields(refused) == [(1, "colour")]
    assert "PatientAdmitted" in refused.problems[0].problem


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"measurements": [{"parameter": "heart_rate", "value": "abc", "unit": "/min"}]}, None),
        ({"occurred_at": "2025-03-01T11:59:58"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"patient_id": ""}, "patient_id"),
        ({"patient_id": "P" * 65}, "patient_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"consciousness": "X"}, "consciousness"),
    ],
    ids=[
        "value not a number",
        "naive occurred_at",
        "occurred_at not a time",
        "empty patient_id",
        "patient_id longer than 64",
        "event_id not a uuid",
        "consciousness not ACVPU",
    ],
)
def test_invalid_field_is_refused_naming_its_path(overrides: dict[str, Any], field: str) -> None:
    refused = refusal(vitals(**overrides))
    assert fields(refused) == [(0, field or "measurements[0].value")]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_a_measurement_value_that_is_not_finite_is_refused_naming_it(value: float) -> None:
    measurements = [{"parameter": "heart_rate", "value": value, "unit": "/min"}]
    refused = refusal(vitals(measurements=measurements))
    assert fields(refused) == [(0, "measurements[0].value")]
    assert "finite" in refused.problems[0].problem


def test_naive_occurred_at_problem_says_timezone() -> None:
    refused = refusal(vitals(occurred_at="2025-03-01T11:59:58"))
    assert "timezone" in refused.problems[0].problem


def test_second_measurement_is_named_by_its_index() -> None:
    measurements = [
        {"parameter": "heart_rate", "value": 80, "unit": "/min"},
        {"parameter": "spo2", "value": "97", "unit": "%"},
    ]
    refused = refusal(vitals(measurements=measurements))
    assert fields(refused) == [(0, "measurements[1].value")]


@pytest.mark.parametrize(
    "event", [{"occurred_at": "2025-03-01T11:59:58Z", "patient_id": "P1"}, vitals(kind="")]
)
def test_missing_or_empty_kind_is_refused(event: dict[str, Any]) -> None:
    refused = refusal(event)
    assert refused.status == 422
    assert len(refused.problems) == 1
    problem = refused.problems[0]
    assert problem.index == 0
    assert "kind" in problem.field + " " + problem.problem


def test_a_batch_with_one_bad_event_accepts_nothing() -> None:
    body = {"events": [vitals(), admitted(), vitals(occurred_at="2025-03-01T11:59:58")]}
    refused = refusal(body)
    assert (refused.status, refused.reason) == (422, "invalid_event")
    assert fields(refused) == [(2, "occurred_at")]


def test_every_problem_carries_the_index_of_its_event() -> None:
    body = {
        "events": [
            vitals(),
            vitals(source="someone"),
            "not an object",
            admitted(ward="", colour="red"),
            vitals(measurements=[{"parameter": "heart_rate", "value": "abc", "unit": "/min"}]),
        ]
    }
    refused = refusal(body)
    assert sorted(fields(refused)) == [
        (1, "source"),
        (2, "(event)"),
        (3, "colour"),
        (3, "ward"),
        (4, "measurements[0].value"),
    ]
    for problem in refused.problems:
        assert isinstance(problem, Problem)
        assert problem.as_dict()["index"] == problem.index
        assert set(problem.as_dict()) == {"index", "field", "problem"}


def test_event_id_is_generated_when_absent() -> None:
    first, second = run({"events": [vitals(), vitals()]})
    assert isinstance(first.event_id, UUID)
    assert first.event_id != second.event_id


def test_event_id_is_kept_when_given() -> None:
    given = "0b8e4bc0-6f3f-4e8e-9a43-3d0c3c6a1f2e"
    (event,) = run(vitals(event_id=given))
    assert event.event_id == UUID(given)


# --- accept: problems never echo what was sent ----------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"occurred_at": SECRET},
        {"patient_id": f"{SECRET}\x00Smith"},
        {"patient_id": SECRET * 5},
        {"device_id": f"{SECRET}/7"},
        {"event_id": SECRET},
        {"consciousness": SECRET},
        {"supplemental_oxygen": SECRET},
        {"measurements": SECRET},
        {"measurements": [{"parameter": SECRET, "value": 1, "unit": "/min"}]},
        {"measurements": [{"parameter": "heart_rate", "value": SECRET, "unit": "/min"}]},
        {
            "measurements": [
                {"parameter": "heart_rate", "value": 1, "unit": "/min", "loinc": SECRET}
            ]
        },
        {"recorded_at": SECRET},
        {"source": SECRET},
        {"note": SECRET},
        pytest.param({"kind": SECRET}, id="kind"),
    ],
    ids=lambda overrides: "+".join(overrides),
)
def test_problems_never_echo_the_submitted_value(overrides: dict[str, Any]) -> None:
    refused = refusal({"events": [vitals(), vitals(**overrides)]})
    assert refused.problems
    for problem in refused.problems:
        assert problem.index == 1
        assert SECRET not in problem.field
        assert SECRET not in problem.problem
    assert SECRET not in str(refused)


@pytest.mark.parametrize("kind", [["VitalSignsObserved"], {"name": "x"}], ids=["list", "object"])
def test_kind_that_is_not_a_string_is_refused(kind: Any) -> None:
    refused = refusal(vitals(kind=kind))
    assert refused.status == 422


# --- pseudonyms, sources -------------------------------------------------------------------


def test_the_same_mrn_always_gets_the_same_pseudonym_and_another_key_another() -> None:
    assert pseudonymise("MRN-1", PSEUDONYM_KEY) == pseudonymise("MRN-1", PSEUDONYM_KEY)
    assert pseudonymise("MRN-1", PSEUDONYM_KEY) != pseudonymise("MRN-2", PSEUDONYM_KEY)
    assert pseudonymise("MRN-1", PSEUDONYM_KEY) != pseudonymise("MRN-1", b"x" * 32)
    assert "MRN-1" not in pseudonymise("MRN-1", PSEUDONYM_KEY)


def test_a_source_may_send_only_its_kinds() -> None:
    from services.ingest.domain import prepare
    from services.ingest.sources import key_digest, sources_from_toml

    toml = f"""
[[sources]]
name = "monitor-gw"
key_sha256 = "{key_digest("monitor-key-0123456789")}"
kinds = ["VitalSignsObserved"]
"""
    (monitor,) = sources_from_toml(toml, default_rate=10.0, default_burst=10.0)
    assert prepare([vitals()], source=monitor, now=NOW, pseudonym_key=PSEUDONYM_KEY)
    with pytest.raises(BatchRefused) as refused:
        prepare([vitals(), admitted()], source=monitor, now=NOW, pseudonym_key=PSEUDONYM_KEY)
    assert refused.value.status == 403
    assert fields(refused.value) == [(1, "kind")]


# --- care events -------------------------------------------------------------------------------


def care_events() -> list[dict[str, Any]]:
    at = "2025-03-01T11:50:00Z"
    role = {"set_by_role": "ICU consultant"}
    return [
        {"kind": "CeilingOfCareSet", "occurred_at": at, "patient_id": "P1", "ceiling": "hdu"}
        | role,
        {"kind": "SuspectedInfectionSet", "occurred_at": at, "patient_id": "P1", "suspected": True}
        | role,
        {
            "kind": "ParameterOverrideSet",
            "occurred_at": at,
            "patient_id": "P1",
            "parameter": "spo2_percent",
            "low": 88,
            "high": 92,
            "expires_at": "2025-03-03T11:50:00Z",
        }
        | role,
        {
            "kind": "ParameterOverrideCleared",
            "occurred_at": at,
            "patient_id": "P1",
            "parameter": "heart_rate_bpm",
        }
        | role,
        {
            "kind": "AlertAcknowledged",
            "occurred_at": at,
            "patient_id": "P1",
            "assessment_id": "0b8e4bc0-6f3f-4e8e-9a43-3d0c3c6a1f2e",
            "acknowledged_by_role": "registered nurse",
        },
    ]


def care_source(kinds: list[str]) -> Any:
    from services.ingest.sources import key_digest, sources_from_toml

    allowed = ", ".join(f'"{kind}"' for kind in kinds)
    toml = f"""
[[sources]]
name = "ehr-care"
key_sha256 = "{key_digest("care-key-0123456789")}"
kinds = [{allowed}]
"""
    (source,) = sources_from_toml(toml, default_rate=10.0, default_burst=10.0)
    return source


def test_accepts_every_care_event_pseudonymised_and_stamped() -> None:
    from schemas.care import CARE_EVENTS

    events = run({"events": care_events()})
    assert [type(e) for e in events] == list(CARE_EVENTS)
    assert {e.patient_id for e in events} == {pseudonymise("P1", PSEUDONYM_KEY)}
    assert {(e.source, e.recorded_at) for e in events} == {("bedside-gw", NOW)}


def test_a_source_allowed_the_care_kinds_may_send_them_and_nothing_else() -> None:
    from services.ingest.domain import prepare

    kinds = [item["kind"] for item in care_events()]
    ehr = care_source(kinds)
    assert len(prepare(care_events(), source=ehr, now=NOW, pseudonym_key=PSEUDONYM_KEY)) == 5
    with pytest.raises(BatchRefused) as refused:
        prepare([*care_events(), vitals()], source=ehr, now=NOW, pseudonym_key=PSEUDONYM_KEY)
    assert (refused.value.status, fields(refused.value)) == (403, [(5, "kind")])


def test_a_source_not_allowed_care_kinds_is_refused_naming_each() -> None:
    from services.ingest.domain import prepare

    monitor = care_source(["VitalSignsObserved"])
    with pytest.raises(BatchRefused) as refused:
        prepare(care_events(), source=monitor, now=NOW, pseudonym_key=PSEUDONYM_KEY)
    assert refused.value.reason == "kind_not_allowed"
    assert fields(refused.value) == [(i, "kind") for i in range(5)]


def test_a_sources_file_with_an_unknown_kind_is_refused_naming_the_entry() -> None:
    from services.ingest.sources import SourcesError

    with pytest.raises(SourcesError, match=r"sources\[0\]\.kinds: .*AlertAcknowleged"):
        care_source(["AlertAcknowleged"])  # a typo would otherwise refuse everything it sends
    assert care_source(["*"]).may_send("AlertAcknowledged")


def override_set(**overrides: Any) -> dict[str, Any]:
    return care_events()[2] | overrides


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"low": 95, "high": 90}, "low"),
        ({"expires_at": "2025-03-01T11:00:00Z"}, "expires_at"),
        ({"expires_at": "2025-03-09T11:50:00Z"}, "expires_at"),
        ({"expires_at": "2025-03-03T11:50:00"}, "expires_at"),
        ({"parameter": "diastolic_bp_mmhg"}, "parameter"),
        ({"low": "88"}, "low"),
        ({"set_by_role": "Dr. Smith <3"}, "set_by_role"),
        ({"set_by_role": None}, "set_by_role"),
    ],
    ids=[
        "low above high",
        "expires before it starts",
        "longer than 7 days",
        "naive expiry",
        "not overridable",
        "low as text",
        "role with odd characters",
        "no role",
    ],
)
def test_an_invalid_override_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    refused = refusal(override_set(**overrides))
    assert (refused.status, fields(refused)) == (422, [(0, field)])
    assert SECRET not in refused.problems[0].problem


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"ceiling": "hospice"}, "ceiling"),
        ({"suspected": "maybe"}, "suspected"),
        ({"suspected": "yes"}, "suspected"),  # a boolean, never a guessed string
        ({"assessment_id": "alert-1"}, "assessment_id"),
        ({"acknowledged_by_role": ""}, "acknowledged_by_role"),
        ({"set_by_role": "nurse", "ward": "W1"}, "ward"),
    ],
)
def test_an_invalid_care_event_is_refused_naming_the_field(
    item: dict[str, Any], field: str
) -> None:
    by_field = {
        "ceiling": 0,
        "suspected": 1,
        "assessment_id": 4,
        "acknowledged_by_role": 4,
        "ward": 0,
    }
    refused = refusal(care_events()[by_field[field]] | item)
    assert fields(refused) == [(0, field)]
