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


def describe(error: ValidationError, *, skip_union_tag: bool = True) -> list[dict[str, str]]:
    """One `{field, problem}` per failure, without the offending input (it may be PHI)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        location = item["loc"]
        # Discriminated unions prefix the location with the matched kind: drop it.
        tagged = len(location) > 1 and isinstance(location[0], str) and location[0][:1].isupper()
        if skip_union_tag and tagged:
            location = location[1:]
        problems.append({"field": field_path(location), "problem": item["msg"]})
    return problems


def summarise(error: ValidationError) -> str:
    return "; ".join(f"{p['field']}: {p['problem']}" for p in describe(error))
