"""Cleaning and care instructions: they pass to events.clean as sent, once per event id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from schemas.base import Event
from schemas.care import (
    CARE_EVENTS,
    AlertAcknowledged,
    CeilingOfCareSet,
    ParameterOverrideCleared,
    ParameterOverrideSet,
    SuspectedInfectionSet,
)
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW
from services.cleaning.app import load_code_map
from services.cleaning.config import CleaningSettings
from services.cleaning.domain import Cleaned, CleaningRejection, CleaningRules, EventCleaner

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CODES = load_code_map(CleaningSettings())


def cleaner(**rules: Any) -> EventCleaner:
    return EventCleaner(CleaningRules(**rules), CODES)


def care_instructions(at: datetime = NOW) -> list[Event]:
    envelope: dict[str, Any] = {
        "occurred_at": at,
        "recorded_at": at,
        "source": "ehr",
        "patient_id": "P1",
    }
    role = "ICU consultant"
    return [
        CeilingOfCareSet(event_id=uuid4(), **envelope, ceiling="general", set_by_role=role),
        SuspectedInfectionSet(event_id=uuid4(), **envelope, suspected=True, set_by_role=role),
        ParameterOverrideSet(
            event_id=uuid4(),
            **envelope,
            parameter="spo2_percent",
            low=88,
            high=92,
            expires_at=at + timedelta(days=1),
            set_by_role=role,
        ),
        ParameterOverrideCleared(
            event_id=uuid4(), **envelope, parameter="spo2_percent", set_by_role=role
        ),
        AlertAcknowledged(event_id=uuid4(), **envelope, acknowledged_by_role="registered nurse"),
    ]


def test_care_events_pass_through_unchanged_and_once() -> None:
    events = care_instructions()
    assert [type(e) for e in events] == list(CARE_EVENTS), "every care event is covered"
    subject = cleaner()
    for event in events:
        assert subject.clean(event, NOW) == Cleaned(event)
    for event in events:  # redelivered, e.g. after a crash of cleaning
        assert subject.clean(event, NOW) == Cleaned(None, dropped="event_id")


def test_a_care_event_from_the_future_is_refused_and_not_remembered() -> None:
    (ceiling, *_) = care_instructions(NOW + timedelta(hours=1))
    subject = cleaner()
    with pytest.raises(CleaningRejection) as refused:
        subject.clean(ceiling, NOW)
    assert refused.value.reason == "future_event"
    assert subject.clean(ceiling, ceiling.occurred_at) == Cleaned(ceiling), "a replay passes"


def test_an_old_care_event_is_not_marked_late_or_dropped() -> None:
    (_, infection, *_) = care_instructions(NOW - timedelta(days=3))
    assert cleaner(state_retention_seconds=86_400).clean(infection, NOW) == Cleaned(infection)


def test_care_events_travel_on_both_event_topics() -> None:
    assert set(CARE_EVENTS) <= set(EVENTS_RAW.events) & set(EVENTS_CLEAN.events)
