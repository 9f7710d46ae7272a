"""The FHIR R4 layer of ingest: resources and transaction/batch Bundles in, inbound items out;
OperationOutcome and response Bundles back.

Every incoming resource is validated with the fhir.resources R4B models; a failure becomes a
MappingError whose `location` is the FHIR element path (`Observation.valueQuantity.value`,
`Bundle.entry[2].resource.code`) and whose message never quotes the submitted value. Pure: no
I/O, no clock. Observation and Encounter mapping live in `fhir_observation` / `fhir_encounter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.ingest.fhir_common import Mapped, validate
from services.ingest.fhir_encounter import map_encounter
from services.ingest.fhir_observation import map_observation
from services.ingest.mapping import MappingError

__all__ = [
    "EntryResult",
    "Mapped",
    "bundle_response",
    "informational_outcome",
    "map_bundle",
    "map_resource",
    "operation_outcome",
]

Severity = Literal["fatal", "error", "warning", "information"]

MAPPERS: dict[str, Callable[[dict[str, Any]], Mapped]] = {
    "Observation": map_observation,
    "Encounter": map_encounter,
}
BUNDLE_TYPES = ("transaction", "batch")
ENTRY_METHODS = ("POST", "PUT")
RESPONSE_TYPES = {"transaction": "transaction-response", "batch": "batch-response"}
# The R4 issue-type codes (http://hl7.org/fhir/issue-type). A MappingError.code that is one of
# them (the mappers use invalid, required, value, not-supported) is the issue's code; any other
# code becomes "processing".
ISSUE_TYPES = frozenset(
    (  # noqa: SIM905 - thirty-one codes read better as text than one per line
        "invalid structure required value invariant security login unknown expired forbidden "
        "suppressed processing not-supported duplicate multiple-matches not-found deleted "
        "too-long code-invalid extension too-costly business-rule conflict transient lock-error "
        "no-store exception timeout incomplete throttled informational"
    ).split()
)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_HTTP_STATUS = re.compile(r"[1-5]\d\d( .+)?")


@dataclass(frozen=True)
class EntryResult:
    """One Bundle entry: what it mapped to, or why it could not be mapped."""

    index: int
    mapped: Mapped | None
    error: MappingError | None


def map_resource(resource: Any) -> Mapped:
    """An Observation or Encounter as inbound items, or MappingError naming the element."""
    resource_type = _resource_type(resource)
    mapper = MAPPERS.get(resource_type)
    if mapper is None:
        raise MappingError(
            resource_type, "not-supported", "wardflow maps only Observation and Encounter"
        )
    return mapper(resource)


def map_bundle(bundle: Any) -> list[EntryResult]:
    """Every entry of a transaction or batch Bundle, mapped independently.

    A problem with the Bundle itself raises MappingError; a problem with one entry is that
    entry's `error`, located under `Bundle.entry[i]`. For a transaction the caller refuses all
    entries if any has an error; for a batch each entry stands alone."""
    if _resource_type(bundle) != "Bundle":
        raise MappingError("resourceType", "invalid", "must be Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise MappingError("Bundle.entry", "invalid", "must be a list")
    shell = validate(Bundle, {k: v for k, v in bundle.items() if k != "entry"}, "Bundle")
    if shell.type not in BUNDLE_TYPES:
        raise MappingError("Bundle.type", "not-supported", "must be transaction or batch")
    return [_map_entry(index, entry) for index, entry in enumerate(entries)]


def _map_entry(index: int, entry: Any) -> EntryResult:
    root = f"Bundle.entry[{index}]"
    try:
        if not isinstance(entry, dict):
            raise MappingError(root, "invalid", "must be a JSON object")
        envelope = {k: v for k, v in entry.items() if k != "resource"}
        request = validate(BundleEntry, envelope, root).request
        if request is None:
            raise MappingError(f"{root}.request", "required", "is required in a transaction")
        if request.method not in ENTRY_METHODS:
            raise MappingError(f"{root}.request.method", "not-supported", "must be POST or PUT")
        if entry.get("resource") is None:
            raise MappingError(f"{root}.resource", "required", "is required for POST and PUT")
        try:
            return EntryResult(index, map_resource(entry["resource"]), None)
        except MappingError as error:
            raise _relocated(error, entry["resource"], f"{root}.resource") from None
    except MappingError as error:
        return EntryResult(index, None, error)


def _relocated(error: MappingError, resource: Any, prefix: str) -> MappingError:
    """`Observation.code` -> `Bundle.entry[1].resource.code`."""
    location = error.location
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if location == "resourceType":
        location = f"{prefix}.resourceType"
    elif isinstance(resource_type, str) and location.startswith(resource_type):
        rest = location.removeprefix(resource_type)
        location = prefix + rest if rest[:1] in ("", ".") else f"{prefix}.{location}"
    else:
        location = f"{prefix}.{location}"
    return MappingError(location, error.code, error.message)


def _resource_type(resource: Any) -> str:
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise MappingError("resourceType", "required", "a FHIR resource needs resourceType")
    resource_type = resource["resourceType"]
    if not isinstance(resource_type, str) or not _TYPE_NAME.fullmatch(resource_type):
        raise MappingError("resourceType", "invalid", "is not a FHIR resource type name")
    return resource_type


def operation_outcome(
    errors: Sequence[MappingError], *, severity: Severity = "error"
) -> dict[str, Any]:
    """An R4 OperationOutcome with one issue per error, its location as the expression."""
    if not errors:
        raise ValueError("an OperationOutcome needs at least one issue")
    issues = [
        {
            "severity": severity,
            "code": error.code if error.code in ISSUE_TYPES else "processing",
            "diagnostics": error.message,
            "expression": [error.location],
        }
        for error in errors
    ]
    return _checked(OperationOutcome, {"resourceType": "OperationOutcome", "issue": issues})


def informational_outcome(note: str) -> dict[str, Any]:
    """An R4 OperationOutcome that only informs, e.g. why a resource produced no event."""
    issue = {"severity": "information", "code": "informational", "diagnostics": note}
    return _checked(OperationOutcome, {"resourceType": "OperationOutcome", "issue": [issue]})


def bundle_response(bundle_type: str, entries: list[tuple[str, dict[str, Any] | None]]) -> dict:
    """A transaction-response or batch-response Bundle: per entry, in order, an HTTP status
    (`"201 Created"`, `"200 OK"`, `"422 Unprocessable Entity"`) and an optional OperationOutcome."""
    response_type = RESPONSE_TYPES.get(bundle_type, bundle_type)
    if response_type not in RESPONSE_TYPES.values():
        raise ValueError("bundle_type must be transaction or batch")
    response_entries = []
    for status, outcome in entries:
        if not _HTTP_STATUS.fullmatch(status):
            raise ValueError("an entry status must start with a 3-digit HTTP status code")
        response = {"status": status} if outcome is None else {"status": status, "outcome": outcome}
        response_entries.append({"response": response})
    body: dict[str, Any] = {"resourceType": "Bundle", "type": response_type}
    if response_entries:  # FHIR JSON has no empty arrays
        body["entry"] = response_entries
    return _checked(Bundle, body)


def _checked(model: type[Bundle] | type[OperationOutcome], body: dict[str, Any]) -> dict[str, Any]:
    """The body after validation by the R4B model, as FHIR JSON (no nulls)."""
    return model.model_validate(body).model_dump(mode="json", exclude_none=True)
