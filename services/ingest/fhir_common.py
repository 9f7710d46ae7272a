"""What the FHIR Observation and Encounter mappers share: validation with the R4B models, turning
a validation failure into a MappingError that names the FHIR element, and reading subjects,
references and times.

Pure: no I/O, no clock. Nothing here quotes a submitted value (it may be PHI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from fhir.resources.R4B.reference import Reference
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.ingest.mapping import InboundItem, MappingError

Model = TypeVar("Model", bound=FHIRAbstractModel)

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ELEMENT = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*")
_PYTHON_NAMES = {"resource_type": "resourceType", "class_fhir": "class"}
_NO_TIMEZONE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_SPEC_REGEX = re.compile(r"(\w+) value string does not match spec regex\.")
_MISSING = ("missing", "model_field_validation.missing")
_STRUCTURE = ("extra_forbidden", "json_invalid", "model_attributes_type")

TimeAt = tuple[datetime | date | str | None, str]
"""A FHIR dateTime or instant as the library parsed it, and the element it came from."""


@dataclass(frozen=True)
class Mapped:
    """What one FHIR resource became: inbound items, and when there are none, a `note` why."""

    items: list[InboundItem]
    resource_type: str
    resource_id: str | None
    version_id: str | None
    note: str | None = None


def validate(model: type[Model], resource: dict[str, Any], root: str) -> Model:
    """The resource as an R4B model, or a MappingError at the first failing element under `root`."""
    try:
        return model.model_validate(resource)
    except ValidationError as error:
        raise _mapping_error(error, root) from None
    except KeyError:  # fhir.resources' lookup of an unknown resourceType (e.g. in `contained`)
        raise MappingError(root, "invalid", "contains an unknown FHIR resource type") from None


def element_path(root: str, loc: tuple[int | str, ...]) -> str:
    """`("component", 0, "valueQuantity")` under `Observation` -> `Observation.component[0]...`."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _ELEMENT.fullmatch(part) and part != "root":  # skip pydantic's internal steps
            path += "." + _PYTHON_NAMES.get(part, part)
    return path


def _mapping_error(error: ValidationError, root: str) -> MappingError:
    first = error.errors(include_url=False)[0]
    code, message = _problem(first)
    return MappingError(element_path(root, first["loc"]), code, message)


def _problem(item: ErrorDetails) -> tuple[str, str]:
    """The MappingError code and a message for one pydantic error; the input is only inspected."""
    kind, raw = item["type"], item.get("input")
    message = item["msg"].removeprefix("Value error, ")
    if kind in _MISSING:
        return "required", "is required"
    if kind == "extra_forbidden":
        return "invalid", "is not an element of this FHIR R4 type"
    if kind in ("json_invalid", "model_attributes_type"):
        return "invalid", "must be a JSON object"
    if kind.endswith("_type") or kind in _STRUCTURE:
        return "invalid", _without_input(message, raw)
    timestamp = "DateTime" in message or "Instant" in message
    if timestamp and isinstance(raw, str) and _NO_TIMEZONE.fullmatch(raw):
        return "value", "must include a timezone"
    spec = _SPEC_REGEX.fullmatch(message)
    if spec:
        return "value", f"is not a valid FHIR {spec[1].lower()}"
    return "value", _without_input(message, raw)


def _without_input(message: str, raw: object) -> str:
    if isinstance(raw, str | int | float) and str(raw) and str(raw) in message:
        return "is not valid"
    return message


def reference_id(reference: str | None, resource_type: str) -> str | None:
    """The logical id of a `<Type>/<id>` reference (relative, absolute or versioned), else None."""
    if not reference:
        return None
    path = reference.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2] == resource_type and FHIR_ID.fullmatch(parts[-1]):
        return parts[-1]
    return None


def patient_mrn(subject: Reference | None, root: str) -> str:
    """The MRN: `subject.identifier.value`, else the id of a `Patient/<id>` reference.

    `subject.display` (a name) is never read."""
    if subject is None:
        raise MappingError(
            f"{root}.subject", "required", "needs identifier.value (the MRN) or Patient/<id>"
        )
    if subject.identifier is not None and subject.identifier.value:
        return subject.identifier.value
    if subject.reference:
        patient = reference_id(subject.reference, "Patient")
        if patient is None:
            raise MappingError(
                f"{root}.subject.reference", "value", "must be a Patient/<id> reference"
            )
        return patient
    raise MappingError(
        f"{root}.subject", "required", "needs identifier.value (the MRN) or Patient/<id>"
    )


def aware_time(value: datetime | date | str | None, location: str) -> datetime | None:
    """A FHIR dateTime/instant as an aware datetime; None when absent; a partial date (or a leap
    second, which the library keeps as text) is refused: events need a time and a timezone."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise MappingError(location, "value", "must include a timezone")
        return value
    raise MappingError(location, "value", "must be a date and time with a timezone")


def first_time(*candidates: TimeAt) -> datetime | None:
    """The first present time of `(value, location)` pairs, each checked by `aware_time`."""
    for value, location in candidates:
        if value is not None:
            return aware_time(value, location)
    return None


def without_none(item: InboundItem) -> InboundItem:
    return {key: value for key, value in item.items() if value is not None}
