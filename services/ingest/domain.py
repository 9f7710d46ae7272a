"""Ingest rules: turn a sender's JSON into contract events, or say precisely what is wrong.

Pure: the clock value, the authenticated source and the pseudonym key are passed in. A batch is
all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from schemas.base import Event
from schemas.codec import decode_python
from schemas.topics import EVENTS_RAW
from services.common.auth import bearer_token as bearer_token  # re-exported: ingest's rules
from services.common.errors import describe
from services.ingest.guards import pseudonymise
from services.ingest.sources import Source

INGEST_OWNED_FIELDS = ("recorded_at", "source")
KINDS: dict[str, type[Event]] = {
    model.__name__: model for model in EVENTS_RAW.events if issubclass(model, Event)
}
FIELDS: dict[str, frozenset[str]] = {kind: frozenset(m.model_fields) for kind, m in KINDS.items()}


@dataclass(frozen=True)
class Problem:
    index: int
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "problem": self.problem}


class BatchRefused(Exception):
    """The request cannot be accepted; `status` is the HTTP status, `problems` say why."""

    def __init__(
        self,
        status: int,
        reason: str,
        problems: list[Problem],
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.problems = problems
        self.retry_after_seconds = retry_after_seconds


def items_of(body: Any, max_events: int) -> list[Any]:
    """The events of a request: `{"events": [...]}` or one event object."""
    if isinstance(body, dict) and "events" in body:
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise BatchRefused(
                422, "invalid_event", [Problem(0, "events", "must be a non-empty list")]
            )
    elif isinstance(body, dict):
        items = [body]
    else:
        raise BatchRefused(422, "invalid_event", [Problem(0, "(body)", "must be a JSON object")])
    if len(items) > max_events:
        problem = Problem(0, "events", f"{len(items)} events; at most {max_events} per request")
        raise BatchRefused(413, "too_many_events", [problem])
    return items


def _problems_of(index: int, item: Any) -> list[Problem]:
    if not isinstance(item, dict):
        return [Problem(index, "(event)", "must be a JSON object")]
    problems = [
        Problem(index, name, "is set by wardflow ingest; do not send it")
        for name in INGEST_OWNED_FIELDS
        if name in item
    ]
    kind = item.get("kind")
    fields = FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is not None:
        unknown = sorted(item.keys() - fields)
        problems += [Problem(index, name, f"is not a field of {kind}") for name in unknown]
    return problems


def _field_of(field: str, problem: str, kind: Any) -> str:
    """A rule about the event as a whole names the field it is about when its message starts with
    one ("low must not be above high", "expires_at must be after occurred_at")."""
    fields = FIELDS.get(kind) if isinstance(kind, str) else None
    if field != "(event)" or fields is None:
        return field
    first = problem.split(" ", 1)[0]
    return first if first in fields else field


def prepare(
    items: list[Any],
    *,
    source: Source,
    now: datetime,
    pseudonym_key: bytes,
    default_id: Callable[[int], str] = lambda index: str(uuid4()),
) -> list[Event]:
    """Every inbound item as a validated contract event, or BatchRefused naming each failing
    field. Nothing is accepted unless everything is.

    The patient identifier as sent (the MRN) is replaced by its keyed pseudonym before anything
    else sees it; `default_id(index)` gives the event id of an item that brings none.
    """
    problems: list[Problem] = []
    forbidden: list[Problem] = []
    events: list[Event] = []
    for index, item in enumerate(items):
        problems += _problems_of(index, item)
        if not isinstance(item, dict):
            continue
        kind = item.get("kind")
        if isinstance(kind, str) and kind in KINDS and not source.may_send(kind):
            forbidden.append(Problem(index, "kind", f"source {source.name!r} may not send {kind}"))
        # Ingest's own fields win over anything sent, so validation reports only real problems.
        stamped = {**item, "recorded_at": now, "source": source.name}
        if "event_id" not in stamped:
            stamped["event_id"] = default_id(index)
        mrn = stamped.get("patient_id")
        if isinstance(mrn, str) and 0 < len(mrn.strip()) <= 64 and mrn.isprintable():
            stamped["patient_id"] = pseudonymise(mrn, pseudonym_key)
        try:
            model = KINDS.get(kind) if isinstance(kind, str) else None
            # A known kind goes straight to its model; anything else through the union, whose
            # error says which kinds exist.
            event = model.model_validate(stamped) if model else decode_python(EVENTS_RAW, stamped)
            events.append(event)
        except ValidationError as error:
            problems += [
                Problem(index, _field_of(p["field"], p["problem"], kind), p["problem"])
                for p in describe(error)
            ]
    if forbidden:
        raise BatchRefused(403, "kind_not_allowed", forbidden)
    if problems:
        raise BatchRefused(422, "invalid_event", problems)
    return events


def accept(
    body: Any, *, source: Source, now: datetime, max_events: int, pseudonym_key: bytes
) -> list[Event]:
    """The events of a native JSON request (`{"events": [...]}` or one event object)."""
    items = items_of(body, max_events)
    return prepare(items, source=source, now=now, pseudonym_key=pseudonym_key)
