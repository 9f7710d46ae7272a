"""Cleaning service: events.raw -> events.clean, refusals -> events.dlq."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from schemas.observations import VitalSignsObserved
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW, TopicSpec
from services.cleaning.config import CleaningSettings
from services.cleaning.domain import CleaningRejection, DedupeWindow, clean_vital_signs
from services.common.stage import Output, Rejected, StageRunner

STAGE = "cleaning"

DUPLICATES_DROPPED = Counter(
    "wardflow_duplicates_dropped_total", "Repeated events dropped by event id.", ["stage"]
)


class Cleaner:
    """The cleaning handler: domain rules plus the dedupe window."""

    def __init__(self, settings: CleaningSettings) -> None:
        self.dedupe = DedupeWindow(settings.dedupe_window_events)

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        if not self.dedupe.first_time(event.event_id):
            DUPLICATES_DROPPED.labels(STAGE).inc()
            return []
        if isinstance(event, VitalSignsObserved):
            try:
                return [Output(EVENTS_CLEAN, clean_vital_signs(event))]
            except CleaningRejection as rejection:
                raise Rejected(rejection.reason, rejection.detail) from None
        return [Output(EVENTS_CLEAN, event)]


def build(settings: CleaningSettings) -> StageRunner:
    return StageRunner(STAGE, settings, [EVENTS_RAW], Cleaner(settings))
