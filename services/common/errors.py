"""Turning validation failures into precise messages that name the field and never echo values."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(location: tuple[int | str, ...]) -> str:
    """`('measurements', 0, 'value')` -> `measurements[0].value`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


_UNION_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def describe(error: ValidationError, *, skip_union_tag: bool = True) -> list[dict[str, str]]:
    """One `{field, problem}` per failure, without the offending input (it may be PHI)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        location = item["loc"]
        # Discriminated unions prefix the location with the matched kind: drop it.
        tagged = bool(location) and isinstance(location[0], str) and location[0][:1].isupper()
        if skip_union_tag and tagged:
            location = location[1:]
        field, problem = field_path(location), item["msg"].removeprefix("Value error, ")
        if field == "(body)":
            field = "(event)"  # a rule about the event as a whole
        if item["type"] in _UNION_TAG_ERRORS:  # pydantic's message quotes the submitted tag
            discriminator = str(item.get("ctx", {}).get("discriminator", "kind")).strip("'")
            field = f"{field}.{discriminator}" if location else discriminator
            expected = item.get("ctx", {}).get("expected_tags")
            problem = f"must be one of {expected}" if expected else "is required"
        problems.append({"field": field, "problem": problem})
    return problems


def summarise(error: ValidationError) -> str:
    return "; ".join(f"{p['field']}: {p['problem']}" for p in describe(error))
