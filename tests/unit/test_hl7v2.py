"""HL7 v2 layer of ingest: messages in, inbound items (or a precise MappingError) out, ACKs back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from uuid import uuid4
from zoneinfo import ZoneInfo

import hl7
import pytest

from schemas.codec import decode_python
from schemas.topics import EVENTS_RAW
from services.ingest.hl7_ack import ack, batch_ack
from services.ingest.hl7v2 import Header, normalise, parse_header, split_messages, to_items
from services.ingest.mapping import InboundItem, MappingError

TZ = ZoneInfo("Europe/Berlin")  # UTC+1 in March
NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
AT_EVN6 = datetime(2025, 3, 1, 9, 20, tzinfo=UTC)  # EVN-6 20250301102000 in Berlin
AT_OBX = datetime(2025, 3, 1, 9, 28, tzinfo=UTC)  # OBX-14 20250301102800 in Berlin
PID = (
    "PID|1||0099^^^GENHOSP^PI~MRN12345^^^GENHOSP^MR||DOE^JANE^Q||19800101|F|||"
    "12 ELM ST^^SPRINGFIELD^^12345||555-0100"
)


def msh(message_type: str = "ADT^A01^ADT_A01", control_id: str = "MSG0001") -> str:
    return (
        f"MSH|^~\\&|EPIC|GENHOSP|WARDFLOW|GENHOSP|20250301103000||{message_type}|{control_id}|P|2.5"
    )


def evn(event_type: str = "A01", recorded: str = "20250301102500", occurred: str = "") -> str:
    return f"EVN|{event_type}|{recorded}|||OPER1|{occurred}".rstrip("|")


def pv1(assigned: str = "", prior: str = "", visit: str = "V100") -> str:
    fields = ["PV1", "1", "I", assigned, "", "", prior, "1234^HOUSE^GREG", "", "", "MED"]
    return "|".join([*fields, *[""] * 8, visit])


def adt(trigger: str, assigned: str = "", prior: str = "", **evn_fields: str) -> str:
    evn_fields.setdefault("occurred", "20250301102000")
    segments = [msh(f"ADT^{trigger}^ADT_A01"), evn(trigger, **evn_fields), PID]
    return "\r".join([*segments, pv1(assigned, prior)])


def obx(
    n: int,
    code: str,
    value: str,
    unit: str = "",
    *,
    kind: str = "NM",
    status: str = "F",
    at: str = "20250301102800",
    device: str = "",
) -> str:
    fields = ["OBX", str(n), kind, code, "", value, unit, "", "", "", "", status, "", "", at]
    return "|".join([*fields, "", "", "", device]).rstrip("|")


def oru(*observations: str, obr_time: str = "20250301102900") -> str:
    head = [msh("ORU^R01^ORU_R01", "ORU0001"), PID, pv1("W3N^301^B")]
    obr = f"OBR|1|||VITALS^Vital signs|||{obr_time}"
    return "\r".join([*head, obr, *observations])


VITALS = [
    obx(1, "8867-4^Heart rate^LN", "88", "/min", device="MON-7"),
    obx(2, "9279-1^Respiratory rate^LN", "18", "/min"),
    obx(3, "59408-5^SpO2^LN", "95", "%"),
    obx(4, "85354-9^Blood pressure panel^LN", "128/84", "mm[Hg]", kind="ST"),
    obx(5, "8310-5^Body temperature^LN", "99.5", "[degF]"),
    obx(6, "67775-7^Level of responsiveness^LN", "V^Voice^ACVPU", kind="CWE"),
    obx(7, "3151-8^Inhaled oxygen flow rate^LN", "2", "L/min"),
]
VITALS_ITEM = {
    "kind": "VitalSignsObserved",
    "occurred_at": AT_OBX,
    "patient_id": "MRN12345",
    "device_id": "MON-7",
    "measurements": [
        {"parameter": "heart_rate", "value": 88.0, "unit": "/min", "loinc": "8867-4"},
        {"parameter": "respiratory_rate", "value": 18.0, "unit": "/min", "loinc": "9279-1"},
        {"parameter": "spo2", "value": 95.0, "unit": "%", "loinc": "59408-5"},
        {"parameter": "systolic_bp", "value": 128.0, "unit": "mm[Hg]", "loinc": "8480-6"},
        {"parameter": "diastolic_bp", "value": 84.0, "unit": "mm[Hg]", "loinc": "8462-4"},
        {"parameter": "temperature", "value": 99.5, "unit": "[degF]", "loinc": "8310-5"},
        {"parameter": "oxygen_flow", "value": 2.0, "unit": "L/min", "loinc": "3151-8"},
    ],
    "supplemental_oxygen": True,
    "consciousness": "V",
}


def items(message: str) -> list[InboundItem]:
    return to_items(message, tz=TZ)[1]


def refusal(call: Callable[[], object]) -> MappingError:
    with pytest.raises(MappingError) as refused:
        call()
    return refused.value


def as_event(item: InboundItem) -> Any:
    """Validate an item as ingest will: stamped, against the events.raw contract."""
    stamped = {"event_id": str(uuid4()), **item, "recorded_at": NOW, "source": "ehr"}
    event = decode_python(EVENTS_RAW, stamped)
    assert set(item) <= set(type(event).model_fields), "an item field the event does not know"
    return event


# --- ADT triggers ---------------------------------------------------------------------------

ENCOUNTER = {"occurred_at": AT_EVN6, "patient_id": "MRN12345", "encounter_id": "V100"}
ADT_CASES = [
    (
        "A01",
        "W3N^301^B",
        "",
        {"kind": "PatientAdmitted", "ward": "W3N", "bed": "B", "sex": "female"},
    ),
    (
        "A06",
        "W3N^301",
        "",
        {"kind": "PatientAdmitted", "ward": "W3N", "bed": None, "sex": "female"},
    ),
    ("A04", "ED", "", {"kind": "PatientRegistered", "ward": "ED"}),
    ("A04", "", "", {"kind": "PatientRegistered", "ward": None}),
    (
        "A02",
        "W5S^502^A",
        "W3N^301^B",
        {"kind": "PatientTransferred", "from_ward": "W3N", "from_bed": "B"}
        | {"ward": "W5S", "bed": "A", "sex": "female"},
    ),
    ("A03", "W5S^502^A", "", {"kind": "PatientDischarged", "ward": "W5S"}),
    (
        "A08",
        "W5S^502^C",
        "",
        {"kind": "PatientUpdated", "ward": "W5S", "bed": "C", "cleared": []},
    ),
    ("A11", "W3N^301^B", "", {"kind": "AdmissionCancelled", "ward": "W3N", "bed": "B"}),
    (
        "A12",  # HL7 2.5: PV1-3 is where the patient is back, PV1-6 the cancelled destination
        "W3N^301^B",
        "W5S^502^A",
        {"kind": "TransferCancelled", "ward": "W3N", "bed": "B"}
        | {"cancelled_ward": "W5S", "cancelled_bed": "A"},
    ),
    ("A13", "W5S^502^A", "", {"kind": "DischargeCancelled", "ward": "W5S", "bed": "A"}),
]


@pytest.mark.parametrize(("trigger", "assigned", "prior", "expected"), ADT_CASES)
def test_maps_adt_trigger_to_its_event(
    trigger: str, assigned: str, prior: str, expected: dict[str, Any]
) -> None:
    header, produced = to_items(adt(trigger, assigned, prior), tz=TZ)
    assert header.trigger == trigger
    assert produced == [ENCOUNTER | expected]
    assert as_event(produced[0]).kind == expected["kind"]


@pytest.mark.parametrize(
    ("code", "sex"),
    [
        ("F", "female"),
        ("M", "male"),
        ("O", "other"),
        ("U", "unknown"),
        ("m", "male"),
        ("A", None),
        ("N", None),
        ("", None),
    ],
)
def test_maps_pid8_administrative_sex_onto_admissions_and_transfers(
    code: str, sex: str | None
) -> None:
    for trigger in ("A01", "A02"):
        message = adt(trigger, "W5S^502^A", "W3N^301^B").replace(
            "||19800101|F|", f"||19800101|{code}|"
        )
        (item,) = items(message)
        assert item.get("sex") == sex
        assert as_event(item).sex == sex
    discharged = adt("A03", "W5S^502^A").replace("||19800101|F|", "||19800101|M|")
    assert "sex" not in items(discharged)[0]  # only where the scheduler places the patient


def test_msh9_decides_the_event_when_evn1_disagrees() -> None:
    message = adt("A01", "W3N^301^B").replace("EVN|A01|", "EVN|A03|")
    assert [item["kind"] for item in items(message)] == ["PatientAdmitted"]


def test_prefers_the_mr_typed_identifier_else_the_first() -> None:
    assert items(adt("A01", "W3N"))[0]["patient_id"] == "MRN12345"
    message = adt("A01", "W3N").replace(PID, "PID|1||0099^^^GENHOSP^PI~X7^^^GENHOSP^PN")
    assert items(message)[0]["patient_id"] == "0099"


@pytest.mark.parametrize(
    ("assigned", "ward", "bed", "cleared"),
    [
        ('""^^""', None, None, ["ward", "bed"]),
        ('W5S^502^""', "W5S", None, ["bed"]),
        ('""', None, None, ["ward", "bed"]),  # the whole PL field nulled
        ("", None, None, []),  # not sent: unchanged
        ("W5S^502", "W5S", None, []),
    ],
)
def test_update_tells_explicit_null_from_not_sent(
    assigned: str, ward: str | None, bed: str | None, cleared: list[str]
) -> None:
    (item,) = items(adt("A08", assigned))
    assert (item["ward"], item["bed"], item["cleared"]) == (ward, bed, cleared)
    assert as_event(item).cleared == cleared


@pytest.mark.parametrize(
    ("trigger", "assigned", "prior", "location"),
    [
        ("A01", '""^301^B', "", "PV1-3"),
        ("A03", "", "", "PV1-3"),
        ("A02", "W5S^502^A", "", "PV1-6"),
        ("A12", "W3N^301^B", '""', "PV1-6"),
    ],
)
def test_refuses_missing_or_nulled_required_location(
    trigger: str, assigned: str, prior: str, location: str
) -> None:
    error = refusal(lambda: to_items(adt(trigger, assigned, prior), tz=TZ))
    assert (error.location, error.code) == (location, "required")


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        ("20250301102000", datetime(2025, 3, 1, 9, 20, tzinfo=UTC)),  # no offset: tz applies
        ("20250701102000", datetime(2025, 7, 1, 8, 20, tzinfo=UTC)),  # summer time in tz
        ("20250301102000+0000", datetime(2025, 3, 1, 10, 20, tzinfo=UTC)),
        ("20250301102000-0500", datetime(2025, 3, 1, 15, 20, tzinfo=UTC)),
        ("20250301102000-0030", datetime(2025, 3, 1, 10, 50, tzinfo=UTC)),
        ("20250301102000.25+0100", datetime(2025, 3, 1, 9, 20, 0, 250000, tzinfo=UTC)),
        ("202503011020", datetime(2025, 3, 1, 9, 20, tzinfo=UTC)),
        ("20250301", datetime(2025, 2, 28, 23, 0, tzinfo=UTC)),
    ],
)
def test_reads_hl7_timestamps_honouring_an_explicit_offset(
    occurred: str, expected: datetime
) -> None:
    occurred_at = items(adt("A01", "W3N", occurred=occurred))[0]["occurred_at"]
    assert occurred_at.tzinfo is not None
    assert occurred_at == expected


def test_event_time_falls_back_from_evn6_to_evn2_to_msh7() -> None:
    assert items(adt("A01", "W3N", occurred=""))[0]["occurred_at"] == datetime(
        2025, 3, 1, 9, 25, tzinfo=UTC
    )
    without_evn = "\r".join(s for s in adt("A01", "W3N").split("\r") if not s.startswith("EVN"))
    assert items(without_evn)[0]["occurred_at"] == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("evn_fields", "location"),
    [
        ({"occurred": "2025-03-01T10:20"}, "EVN-6"),
        ({"occurred": "20251301102000"}, "EVN-6"),  # month 13
        ({"occurred": "20250301102000+2500"}, "EVN-6"),
        ({"occurred": "2025030110200"}, "EVN-6"),  # odd precision
        ({"occurred": "", "recorded": "yesterday"}, "EVN-2"),
    ],
)
def test_refuses_malformed_timestamp_at_its_field(
    evn_fields: dict[str, str], location: str
) -> None:
    error = refusal(lambda: to_items(adt("A01", "W3N", **evn_fields), tz=TZ))
    assert (error.location, error.code, error.message) == (
        location,
        "data_type",
        "not an HL7 timestamp",
    )


# --- framing and encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        adt("A01", "W3N^301^B").encode(),
        adt("A01", "W3N^301^B").replace("\r", "\n").encode(),
        adt("A01", "W3N^301^B").replace("\r", "\r\n").encode() + b"\r\n\r\n",
        b"\xef\xbb\xbf" + adt("A01", "W3N^301^B").encode() + b"\r",
        "\ufeff" + adt("A01", "W3N^301^B").replace("\r", "\n") + "\n  \n",
    ],
    ids=["cr", "lf", "crlf-trailing-blank", "utf8-bom", "str-bom-lf"],
)
def test_segment_endings_and_bom_do_not_change_the_items(payload: bytes | str) -> None:
    text = normalise(payload)
    assert text == adt("A01", "W3N^301^B")
    assert items(split_messages(text)[0]) == items(adt("A01", "W3N^301^B"))


def test_refuses_invalid_utf8() -> None:
    error = refusal(lambda: normalise(adt("A01", "W3N").encode() + b"\xff\xfe"))
    assert (error.location, error.code) == ("MSH", "encoding")


def test_splits_a_framed_batch_into_its_messages() -> None:
    messages = [adt("A01", "W3N^301^B"), adt("A02", "W5S^502^A", "W3N^301^B"), oru(*VITALS)]
    framed = [
        "FHS|^~\\&|EPIC|GENHOSP|WARDFLOW|GENHOSP|20250301103000",
        "BHS|^~\\&|EPIC|GENHOSP|WARDFLOW|GENHOSP|20250301103000||||B01",
        *messages,
        "BTS|3",
        "FTS|1",
    ]
    texts = split_messages(normalise("\n".join(framed)))
    assert texts == messages
    assert [to_items(t, tz=TZ)[1][0]["kind"] for t in texts] == [
        "PatientAdmitted",
        "PatientTransferred",
        "VitalSignsObserved",
    ]


def test_splits_unframed_messages_and_keeps_a_single_one_whole() -> None:
    single = adt("A01", "W3N")
    assert split_messages(single) == [single]
    assert split_messages(single + "\r" + adt("A03", "W3N")) == [single, adt("A03", "W3N")]
    assert split_messages("FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1") == []  # an empty batch


@pytest.mark.parametrize(
    "text",
    [PID + "\r" + adt("A01", "W3N"), "BHS|^~\\&\rEVN|A01\r" + adt("A01", "W3N"), "", "hello"],
    ids=["pid-first", "evn-after-bhs", "empty", "not-hl7"],
)
def test_refuses_anything_but_framing_before_msh(text: str) -> None:
    error = refusal(lambda: split_messages(text))
    assert (error.location, error.code) == ("MSH", "segment_sequence")
    assert "100^Segment sequence error^HL70357" in ack(None, "AR", now=NOW, error=error)


# --- header and malformed messages ----------------------------------------------------------


def test_parses_the_header() -> None:
    assert parse_header(adt("A01", "W3N")) == Header(
        control_id="MSG0001",
        message_type="ADT",
        trigger="A01",
        sending_application="EPIC",
        sending_facility="GENHOSP",
        receiving_application="WARDFLOW",
        receiving_facility="GENHOSP",
        structure="ADT_A01",
        processing_id="P",
        version="2.5",
        field_separator="|",
        encoding_characters="^~\\&",
    )


A01 = adt("A01", "W3N")


@pytest.mark.parametrize(
    ("broken", "location"),
    [
        ("MSH|^~|EPIC", "MSH-2"),  # too few encoding characters
        ("MSH|^^\\&|EPIC", "MSH-2"),  # repeated
        ("MSH|^~\\|EPIC", "MSH-2"),
        ("MSH|^~AB|EPIC", "MSH-2"),  # alphanumeric
        ("MSH|^~\\&\rEVN|A01", "MSH-2"),  # MSH ends after MSH-2
        ("MSHA^~\\&A", "MSH-1"),
        ("MSH ", "MSH-1"),
    ],
)
def test_refuses_bad_encoding_characters(broken: str, location: str) -> None:
    text = adt("A01", "W3N").replace("MSH|^~\\&|EPIC", broken, 1)
    error = refusal(lambda: to_items(text, tz=TZ))
    assert (error.location, error.code) == (location, "encoding")


@pytest.mark.parametrize(
    ("message", "location", "code", "condition"),
    [
        (A01.replace(PID, "PID|1||^^^GENHOSP^MR||DOE^JANE"), "PID-3", "required", 101),
        (A01.replace(PID, 'PID|1||""||DOE^JANE'), "PID-3", "required", 101),
        (A01.replace("ADT^A01^ADT_A01", "SIU^S12"), "MSH-9", "unsupported_message_type", 200),
        (adt("A28", "W3N"), "MSH-9", "unsupported_event", 201),
        (oru(*VITALS).replace("ORU^R01", "ORU^R30"), "MSH-9", "unsupported_event", 201),
        (A01.replace("ADT^A01^ADT_A01", "ADT"), "MSH-9", "required", 101),
        (A01.replace("ADT^A01^ADT_A01", ""), "MSH-9", "required", 101),
        (A01.replace("|MSG0001|", "||"), "MSH-10", "required", 101),
        ("\r".join(adt("A01", "W3N").split("\r")[:2]), "PID", "segment_sequence", 100),
        ("\r".join(adt("A01", "W3N").split("\r")[:3]), "PV1", "segment_sequence", 100),
    ],
    ids=[
        "no-mrn",
        "null-mrn",
        "siu",
        "a28",
        "oru-r30",
        "no-trigger",
        "no-msh9",
        "no-msh10",
        "truncated-before-pid",
        "truncated-before-pv1",
    ],
)
def test_refuses_malformed_message_at_a_precise_location(
    message: str, location: str, code: str, condition: int
) -> None:
    error = refusal(lambda: to_items(message, tz=TZ))
    assert (error.location, error.code) == (location, code)
    err = hl7.parse(ack(None, "AE", now=NOW, error=error)).segment("ERR")
    assert str(err(3)(1)(1)) == str(condition)


@pytest.mark.parametrize(
    ("message", "location"),
    [
        (A01.replace("MRN12345^", "MRN\\\\12345^"), "PID-3"),  # empty escape sequence
        (A01.replace("|W3N|", "|W3N\\Zx\\|"), "PV1-3"),  # unknown escape sequence
        (oru(obx(2, "8867-4^HR^LN", "\\C2842\\70", "/min")), "OBX[2]-5"),  # charset switch
    ],
)
def test_refuses_a_malformed_escape_in_a_field_it_reads(message: str, location: str) -> None:
    error = refusal(lambda: to_items(message, tz=TZ))
    assert (error.location, error.code) == (location, "encoding")


def test_ignores_malformed_escapes_in_fields_it_never_reads() -> None:
    message = A01.replace("DOE^JANE", "DOE\\\\JANE\\Zx\\")
    assert items(message) == items(A01)


def test_unescapes_header_values_and_escapes_them_again_in_the_ack() -> None:
    header = parse_header(A01.replace("|GENHOSP|WARDFLOW", "|GEN\\T\\HOSP|WARDFLOW", 1))
    assert header.sending_facility == "GEN&HOSP"
    assert "|EPIC|GEN\\T\\HOSP|" in ack(header, "AA", now=NOW)


def test_accepts_an_update_and_a_registration_without_pv1() -> None:
    for trigger in ("A04", "A08"):
        message = "\r".join(adt(trigger).split("\r")[:3])
        assert as_event(items(message)[0]).encounter_id is None


def test_reads_messages_with_non_standard_delimiters() -> None:
    message = adt("A02", "W5S^502^A", "W3N^301^B").replace("|", "!").replace("^", "@")
    message = message.replace("~", "#")
    header, produced = to_items(message, tz=TZ)
    assert header.field_separator == "!"
    assert (produced[0]["from_bed"], produced[0]["bed"], produced[0]["patient_id"]) == (
        "B",
        "A",
        "MRN12345",
    )
    reply = ack(header, "AA", now=NOW)
    assert reply.startswith("MSH!@#\\&!WARDFLOW!GENHOSP!EPIC!GENHOSP!")
    assert "!ACK@A02@ACK!" in reply


# --- ORU^R01 --------------------------------------------------------------------------------


def test_maps_vital_signs_of_an_oru() -> None:
    header, produced = to_items(oru(*VITALS), tz=TZ)
    assert (header.message_type, header.trigger) == ("ORU", "R01")
    assert produced == [VITALS_ITEM]
    assert as_event(produced[0]).consciousness == "V"


@pytest.mark.parametrize(
    ("status", "counted"),
    [("F", True), ("C", True), ("A", True)]
    + [(status, False) for status in ("X", "D", "W", "P", "R", "I")],
)
def test_counts_only_final_corrected_or_amended_results(status: str, counted: bool) -> None:
    produced = items(oru(obx(1, "8867-4^Heart rate^LN", "88", "/min", status=status)))
    assert len(produced) == (1 if counted else 0)


def test_refuses_a_vital_sign_without_result_status() -> None:
    error = refusal(lambda: items(oru(obx(3, "8867-4^Heart rate^LN", "88", "/min", status=""))))
    assert (error.location, error.code) == ("OBX[3]-11", "required")


@pytest.mark.parametrize(
    ("observation", "location"),
    [
        (obx(2, "8867-4^Heart rate^LN", "eighty", "/min"), "OBX[2]-5"),
        (obx(2, "8867-4^Heart rate^LN", "NaN", "/min"), "OBX[2]-5"),
        (obx(2, "8867-4^Heart rate^LN", "120/80", "/min"), "OBX[2]-5"),
        (obx(2, "85354-9^BP^LN", "128", "mm[Hg]"), "OBX[2]-5"),
        (obx(0, "8867-4^Heart rate^LN", "x", "/min"), "OBX[2]-5"),  # no set id: position
    ],
)
def test_refuses_a_non_numeric_value(observation: str, location: str) -> None:
    message = oru(obx(1, "9279-1^RR^LN", "18", "/min"), observation)
    error = refusal(lambda: items(message))
    assert (error.location, error.code) == (location, "data_type")
    err = hl7.parse(ack(parse_header(message), "AE", now=NOW, error=error)).segment("ERR")
    assert str(err(2)) == f"OBX^{location[4]}^5"
    assert str(err(3)(1)(1)) == "102"


BP = {"systolic_bp": 140.0, "diastolic_bp": 90.0}


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        ([obx(1, "8480-6^SBP^LN", "140/90", "mm[Hg]")], BP),
        ([obx(1, "85354-9^BP^LN", "^140^/^90", "mm[Hg]", kind="SN")], BP),
        ([obx(1, "8462-4^DBP^LN", "85", "mm[Hg]")], {"diastolic_bp": 85.0}),
        ([obx(1, "2708-6^SaO2^LN", "97", "%")], {"spo2": 97.0}),
        ([obx(1, "HR^Heart rate^L^8867-4^Heart rate^LN", "70", "/min")], {"heart_rate": 70.0}),
        ([obx(1, "8867-4^Heart rate", "70", "/min")], {"heart_rate": 70.0}),  # no system
        ([obx(1, "2345-7^Glucose^LN", "high", "mmol/L", kind="ST")], {}),  # text: skipped
    ],
)
def test_reads_codes_and_values(observations: list[str], expected: dict[str, float]) -> None:
    produced = items(oru(*observations))
    values = {m["parameter"]: m["value"] for item in produced for m in item["measurements"]}
    assert values == expected
    assert len(produced) == (1 if expected else 0)


def coded(code: str, system: str | None, unit: str | None, **value: Any) -> dict[str, Any]:
    return {"parameter": None, "code": code, "code_system": system, **value, "unit": unit}


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (obx(1, "HR^Heart rate^99LOCAL", "72", "/min"), coded("HR", "99LOCAL", "/min", value=72.0)),
        (obx(1, "8867-4^Heart rate^L", "70", "/min"), coded("8867-4", "L", "/min", value=70.0)),
        (obx(1, "2345-7^Glucose^LN", "5.5", "mmol/L"), coded("2345-7", "LN", "mmol/L", value=5.5)),
        (obx(1, "TEMP^Temp", "36.6"), coded("TEMP", None, None, value=36.6)),  # no system, unit
        (
            obx(1, "NBP^NIBP^L", "140/90", "mm[Hg]", kind="ST"),
            coded("NBP", "L", "mm[Hg]", text="140/90"),
        ),
        (
            obx(1, "NBP^NIBP^L", "^141^/^92", "mmHg", kind="SN"),
            coded("NBP", "L", "mmHg", text="141/92"),
        ),
        (
            obx(1, "^^^HR^Heart rate^99LOCAL", "75", "/min"),
            coded("HR", "99LOCAL", "/min", value=75.0),
        ),
        (
            obx(1, "147842^MDC_ECG_HEART_RATE^MDC", "80", "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
            coded("147842", "MDC", "264864", value=80.0),
        ),
    ],
)
def test_passes_unknown_codes_on_as_coded_measurements(
    observation: str, expected: dict[str, Any]
) -> None:
    (item,) = items(oru(observation))
    assert item["measurements"] == [expected]
    assert item["supplemental_oxygen"] is None
    event = as_event(item)
    assert event.measurements[0].parameter is None
    assert event.measurements[0].code == expected["code"]


def test_coded_measurements_sit_beside_known_ones_and_only_counted_results_pass() -> None:
    message = oru(
        obx(1, "HR^Heart rate^99LOCAL", "72", "/min"),
        obx(2, "9279-1^Respiratory rate^LN", "18", "/min"),
        obx(3, "SPO2^SpO2^99LOCAL", "97", "%", status="P"),  # preliminary: not counted
        obx(4, "RESP^Resp^99LOCAL", "19", "/min", status=""),  # no status: not counted
    )
    (item,) = items(message)
    assert item["measurements"] == [
        coded("HR", "99LOCAL", "/min", value=72.0),
        {"parameter": "respiratory_rate", "value": 18.0, "unit": "/min", "loinc": "9279-1"},
    ]


@pytest.mark.parametrize(
    "observation",
    [
        obx(1, "NOTE^Nursing note^99LOCAL", "patient DOE resting", kind="TX"),  # free text
        obx(1, "HR^Heart rate^99LOCAL", "", "/min"),  # no value
        obx(1, "HR^Heart rate^99LOCAL", "7\\2", "/min"),  # malformed escape, never refused
        obx(1, "HR^Heart rate^99LOCAL", "72", "/min", at="2025-03-01"),  # malformed time
        obx(1, f"{'X' * 65}^Too long^99LOCAL", "72", "/min"),  # a code the contract cannot carry
        obx(1, "HR^Heart rate^99LOCAL", "72", "U" * 33),  # a unit the contract cannot carry
        obx(1, "^Heart rate^99LOCAL", "72", "/min"),  # no code at all
        obx(1, "NBP^NIBP^L", f"{'9' * 19}/{'9' * 19}", "mm[Hg]", kind="ST"),  # text too long
    ],
)
def test_skips_unknown_codes_that_cannot_be_a_vital_sign(observation: str) -> None:
    assert items(oru(observation)) == []


def test_coded_measurements_never_overflow_an_item() -> None:
    labs = [obx(n, f"L{n}^Lab {n}^99LAB", str(n), "mmol/L") for n in range(1, 41)]
    (item,) = items(oru(*labs, obx(41, "8867-4^HR^LN", "70", "/min")))
    assert len(item["measurements"]) == 32
    assert item["measurements"][-1]["parameter"] == "heart_rate", "a known vital sign is kept"
    assert as_event(item).measurements[0].code == "L1"


@pytest.mark.parametrize(
    ("observation", "on_oxygen"),
    [
        (obx(1, "3151-8^O2 flow^LN", "0", "L/min"), False),
        (obx(1, "3151-8^O2 flow^LN", "2", "L/min"), True),
        (obx(1, "3150-0^FiO2^LN", "40", "%"), True),
        (obx(1, "3150-0^FiO2^LN", "21", "%"), False),
        (obx(1, "3150-0^FiO2^LN", "0.28", "1"), True),
        (obx(1, "8867-4^Heart rate^LN", "70", "/min"), None),
    ],
)
def test_infers_supplemental_oxygen(observation: str, on_oxygen: bool | None) -> None:
    (item,) = items(oru(observation))
    assert item["supplemental_oxygen"] is on_oxygen


def lab(parameter: str, value: float, unit: str, loinc: str) -> dict[str, Any]:
    return {"parameter": parameter, "value": value, "unit": unit, "loinc": loinc}


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (obx(1, "6690-2^WBC^LN", "14.2", "10*9/L"),
         lab("white_cell_count", 14.2, "10*9/L", "6690-2")),
        (obx(1, "26464-8^Leukocytes^LN", "3.1", "10*3/uL"),
         lab("white_cell_count", 3.1, "10*3/uL", "26464-8")),
        (obx(1, "804-5^WBC manual^LN", "8", "/nL"), lab("white_cell_count", 8.0, "/nL", "804-5")),
        (obx(1, "WBC^White cells^99LAB^6690-2^Leukocytes^LN", "9.9", "K/uL^^L"),
         lab("white_cell_count", 9.9, "K/uL", "6690-2")),  # LOINC as the alternate identifier
        (obx(1, "2019-8^pCO2 arterial^LN", "30", "mm[Hg]^mmHg^UCUM"),
         lab("paco2", 30.0, "mm[Hg]", "2019-8")),
        (obx(1, "2019-8^pCO2 arterial^LN", "^5.3", "kPa", kind="SN"),
         lab("paco2", 5.3, "kPa", "2019-8")),
    ],
    ids=["wbc-6690-2", "wbc-26464-8", "wbc-804-5", "wbc-alternate", "paco2-mmHg", "paco2-SN-kPa"],
)  # fmt: skip
def test_reads_laboratory_results(observation: str, expected: dict[str, Any]) -> None:
    (item,) = items(oru(observation))
    assert item["measurements"] == [expected]
    assert item["supplemental_oxygen"] is None, "a lab result says nothing about oxygen"
    assert as_event(item).measurements[0].parameter == expected["parameter"]


def test_a_laboratory_oru_keeps_its_results_beside_unmapped_panel_members() -> None:
    message = "\r".join(
        [
            msh("ORU^R01^ORU_R01", "LAB0001"),
            PID,
            "OBR|1|||58410-2^CBC panel^LN|||20250301093000",
            obx(1, "718-7^Hemoglobin^LN", "13.5", "g/dL", at=""),
            obx(2, "6690-2^WBC^LN", "14.2", "10*9/L", at=""),
            obx(3, "777-3^Platelets^LN", "250", "10*9/L", at=""),
            "OBR|2|||24336-0^Arterial blood gas panel^LN|||20250301094500",
            obx(4, "2744-1^pH arterial^LN", "7.38", "[pH]", at=""),
            obx(5, "2019-8^pCO2 arterial^LN", "4.1", "kPa", at=""),
        ]
    )
    produced = items(message)
    assert [(i["occurred_at"], i["measurements"]) for i in produced] == [
        (
            datetime(2025, 3, 1, 8, 30, tzinfo=UTC),  # OBR-7: when the blood was taken
            [
                coded("718-7", "LN", "g/dL", value=13.5),
                lab("white_cell_count", 14.2, "10*9/L", "6690-2"),
                coded("777-3", "LN", "10*9/L", value=250.0),  # cleaning drops it as unmapped
            ],
        ),
        (
            datetime(2025, 3, 1, 8, 45, tzinfo=UTC),
            [coded("2744-1", "LN", "[pH]", value=7.38), lab("paco2", 4.1, "kPa", "2019-8")],
        ),
    ]
    for item in produced:
        as_event(item)


@pytest.mark.parametrize(
    ("observation", "location", "code"),
    [
        (obx(2, "6690-2^WBC^LN", "14.2", ""), "OBX[2]-6", "required"),
        (obx(2, "2019-8^pCO2^LN", "<20", "mm[Hg]", kind="ST"), "OBX[2]-5", "data_type"),
        (obx(2, "6690-2^WBC^LN", "14.2", "10*9/L", status=""), "OBX[2]-11", "required"),
    ],
    ids=["no-unit", "not-a-number", "no-status"],
)
def test_refuses_a_laboratory_result_it_cannot_read(
    observation: str, location: str, code: str
) -> None:
    error = refusal(lambda: items(oru(observation)))
    assert (error.location, error.code) == (location, code)


def test_consciousness_alone_is_an_observation() -> None:
    snomed = obx(1, "1104441000000107^ACVPU^SCT", "C", kind="ST")
    (item,) = items(oru(snomed))
    assert (item["consciousness"], item["measurements"]) == ("C", [])
    assert as_event(item).consciousness == "C"


@pytest.mark.parametrize(
    "observation",
    [
        obx(2, "8867-4^Heart rate^LN", "", "/min"),
        obx(2, "8867-4^Heart rate^LN", '""', "/min"),
        obx(2, "67775-7^LOR^LN", "", kind="ST"),
    ],
)
def test_refuses_a_counted_vital_sign_without_value(observation: str) -> None:
    error = refusal(lambda: items(oru(observation)))
    assert (error.location, error.code) == ("OBX[2]-5", "required")


def test_refuses_consciousness_outside_acvpu() -> None:
    error = refusal(lambda: items(oru(obx(4, "67775-7^LOR^LN", "Drowsy", kind="ST"))))
    assert (error.location, error.code) == ("OBX[4]-5", "table_value")


def test_refuses_a_vital_sign_without_unit() -> None:
    error = refusal(lambda: items(oru(obx(1, "8867-4^Heart rate^LN", "70"))))
    assert (error.location, error.code) == ("OBX[1]-6", "required")


def test_refuses_the_same_vital_sign_twice_at_one_time() -> None:
    twice = [obx(1, "2708-6^SaO2^LN", "97", "%"), obx(2, "59408-5^SpO2^LN", "96", "%")]
    error = refusal(lambda: items(oru(*twice)))
    assert error.location == "OBX[2]-3"


def test_one_item_per_observation_time_and_obr_group() -> None:
    message = oru(
        obx(1, "8867-4^HR^LN", "70", "/min", at="20250301100000"),
        obx(2, "9279-1^RR^LN", "16", "/min", at="20250301100000"),
        obx(3, "8867-4^HR^LN", "75", "/min", at="20250301101500"),
        obx(4, "8867-4^HR^LN", "80", "/min", at=""),  # falls back to OBR-7
        "OBR|2|||VITALS|||20250301102900",
        obx(5, "8867-4^HR^LN", "82", "/min", at=""),  # same time, another group
    )
    produced = items(message)
    summary = [(i["occurred_at"], [m["value"] for m in i["measurements"]]) for i in produced]
    assert summary == [
        (datetime(2025, 3, 1, 9, 0, tzinfo=UTC), [70.0, 16.0]),
        (datetime(2025, 3, 1, 9, 15, tzinfo=UTC), [75.0]),
        (datetime(2025, 3, 1, 9, 29, tzinfo=UTC), [80.0]),
        (datetime(2025, 3, 1, 9, 29, tzinfo=UTC), [82.0]),
    ]
    for item in produced:
        as_event(item)


def test_observation_time_falls_back_to_msh7() -> None:
    (item,) = items(oru(obx(1, "8867-4^HR^LN", "70", "/min", at=""), obr_time=""))
    assert item["occurred_at"] == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def test_an_oru_without_usable_vitals_yields_nothing() -> None:
    assert items(oru()) == []
    assert items(oru(obx(1, "8867-4^HR^LN", "70", "/min", status="W"))) == []


# --- data minimisation ----------------------------------------------------------------------


def test_never_carries_names_or_addresses() -> None:
    produced = [item for trigger, a, p, _ in ADT_CASES for item in items(adt(trigger, a, p))]
    produced += items(oru(*VITALS))
    dumped = json.dumps(produced, default=str)
    failing = [
        adt("A01", ""),
        "\r".join(adt("A01", "W3N").split("\r")[:3]),
        oru(obx(1, "8867-4^HR^LN", "DOE", "/min")),
        oru(obx(1, "67775-7^LOR^LN", "JANE", kind="ST")),
        adt("A01", "W3N", occurred="DOEJANE"),
    ]
    errors = [refusal(lambda m=m: to_items(m, tz=TZ)) for m in failing]
    texts = [dumped] + [f"{e} {e.message}" for e in errors]
    texts += [
        ack(parse_header(m), "AE", now=NOW, error=e) for m, e in zip(failing, errors, strict=True)
    ]
    for text in texts:
        assert "DOE" not in text
        assert "JANE" not in text
        assert "ELM" not in text


# --- acknowledgements -----------------------------------------------------------------------


def test_acknowledges_acceptance_with_sender_and_receiver_swapped() -> None:
    header = parse_header(adt("A01", "W3N"))
    reply = ack(header, "AA", now=NOW)
    assert reply.split("\r") == [
        "MSH|^~\\&|WARDFLOW|GENHOSP|EPIC|GENHOSP|20250301120005+0000||ACK^A01^ACK|ACKMSG0001|P|2.5",
        "MSA|AA|MSG0001",
    ]
    parsed = hl7.parse(reply)
    assert str(parsed["MSH.F3"]) == "WARDFLOW" and str(parsed["MSH.F5"]) == "EPIC"
    assert str(parsed["MSA.F2"]) == "MSG0001"


@pytest.mark.parametrize(
    ("code", "error_code", "location", "condition", "erl"),
    [
        ("AE", "segment_sequence", "PID", "100^Segment sequence error", "PID^1"),
        ("AE", "required", "PID-3", "101^Required field missing", "PID^1^3"),
        ("AE", "data_type", "OBX[2]-5", "102^Data type error", "OBX^2^5"),
        ("AR", "encoding", "MSH-2", "102^Data type error", "MSH^1^2"),
        ("AE", "table_value", "OBX[4]-5", "103^Table value not found", "OBX^4^5"),
        ("AR", "unsupported_message_type", "MSH-9", "200^Unsupported message type", "MSH^1^9"),
        ("AR", "unsupported_event", "MSH-9", "201^Unsupported event code", "MSH^1^9"),
        ("AR", "unknown_sender", "MSH-4", "204^Unknown key identifier", "MSH^1^4"),
        ("AR", "not_allowed", "MSH-3", "207^Application internal error", "MSH^1^3"),
        ("AE", "duplicate", "OBX[2]-3", "207^Application internal error", "OBX^2^3"),
        ("AE", "required", "Observation.value", "101^Required field missing", ""),
    ],
)
def test_error_ack_carries_a_v25_err_segment(
    code: Literal["AE", "AR"], error_code: str, location: str, condition: str, erl: str
) -> None:
    header = parse_header(oru(*VITALS))
    error = MappingError(location, error_code, "something is wrong")
    reply = ack(header, code, now=NOW, error=error)
    msa, err = reply.split("\r")[1:]
    assert msa == f"MSA|{code}|ORU0001|something is wrong"
    assert err == f"ERR||{erl}|{condition}^HL70357|E||||something is wrong"
    assert str(hl7.parse(reply).segment("ERR")(8)) == "something is wrong"


def test_ack_escapes_delimiters_in_the_user_message() -> None:
    error = MappingError("PID-3", "required", "a|b^c~d\\e&f\rg")
    reply = ack(parse_header(adt("A01", "W3N")), "AE", now=NOW, error=error)
    assert len(reply.split("\r")) == 3
    err = hl7.parse(reply).segment("ERR")
    assert len(err) == 9
    assert err.extract_field(1, 8) == "a|b^c~d\\e&f\rg"


def test_ack_without_a_readable_header_is_still_an_ack() -> None:
    error = MappingError("MSH-2", "encoding", "MSH-2 is wrong")
    reply = ack(None, "AR", now=NOW, error=error)
    parsed = hl7.parse(reply)
    assert str(parsed["MSH.F9"]) == "ACK"
    assert str(parsed["MSH.F12"]) == "2.5"
    assert str(parsed["MSA.F1"]) == "AR" and str(parsed["MSA.F2"]) == ""
    assert len(str(parsed["MSH.F10"])) <= 20


def test_ack_control_id_is_derived_and_at_most_20_characters() -> None:
    header = parse_header(adt("A01", "W3N").replace("MSG0001", "X" * 25))
    first, again = ack(header, "AA", now=NOW), ack(header, "AA", now=NOW + timedelta(hours=1))
    assert str(hl7.parse(first)["MSH.F10"]) == "ACK" + "X" * 17
    assert str(hl7.parse(again)["MSH.F10"]) == "ACK" + "X" * 17


def test_ack_time_keeps_the_offset_of_now() -> None:
    now = datetime(2025, 3, 1, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    reply = ack(parse_header(adt("A01", "W3N")), "AA", now=now)
    assert str(hl7.parse(reply)["MSH.F7"]) == "20250301130005+0100"


def test_batch_ack_wraps_each_ack_and_counts_them() -> None:
    texts = [adt("A01", "W3N"), adt("A28", "W3N"), oru(*VITALS)]
    acks = []
    for text in texts:
        try:
            acks.append(ack(to_items(text, tz=TZ)[0], "AA", now=NOW))
        except MappingError as error:
            acks.append(ack(parse_header(text), "AE", now=NOW, error=error))
    reply = batch_ack(acks, NOW, reference_control_id="B01")
    lines = reply.split("\r")
    assert lines[0] == "BHS|^~\\&|||||20250301120005+0000||||ACKB01|B01"
    assert lines[-1] == "BTS|3"
    batch = hl7.parse_batch(reply)
    assert [str(m["MSA.F1"]) for m in batch] == ["AA", "AE", "AA"]
    assert str(batch.trailer(1)) == "3"


# --- the items are contract events ----------------------------------------------------------


def test_every_produced_item_validates_as_an_events_raw_event() -> None:
    produced = [item for trigger, a, p, _ in ADT_CASES for item in items(adt(trigger, a, p))]
    produced += items(oru(*VITALS)) + items(adt("A08", '""^^""'))
    events = [as_event(item) for item in produced]
    assert {type(e).__name__ for e in events} == {
        "PatientAdmitted",
        "PatientRegistered",
        "PatientTransferred",
        "PatientDischarged",
        "PatientUpdated",
        "AdmissionCancelled",
        "TransferCancelled",
        "DischargeCancelled",
        "VitalSignsObserved",
    }
    assert all(e.occurred_at.tzinfo is not None for e in events)
