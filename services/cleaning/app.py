"""Cleaning service: events.raw -> events.clean, refusals -> events.dlq."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from schemas.topics import EVENTS_CLEAN, EVENTS_RAW, TopicSpec
from services.cleaning.codes import CodeMap, LocalCodesError, parse_local_codes
from services.cleaning.config import CleaningSettings
from services.cleaning.domain import CleaningRejection, CleaningRules, EventCleaner
from services.cleaning.recorded import encode_document
from services.cleaning.units import affine_conversions
from services.common.handlers import Encoded, Output, Rejected
from services.common.stage import StageRunner, utc_now

STAGE = "cleaning"
DEFAULT_LOCAL_CODES = Path(__file__).with_name("local_codes.toml")

VALUES = Counter(
    "wardflow_values_total",
    "Measured values by outcome: valid; artifact (kept, flagged, never scored); impossible "
    "(the event is dead-lettered); unmapped (a code no table knows: dropped).",
    ["stage", "outcome"],
)
DUPLICATES_DROPPED = Counter(
    "wardflow_duplicates_dropped_total",
    "Repeated events dropped: the same event id, or the same reading again under a new id.",
    ["stage", "reason"],
)
LATE_EVENTS = Counter(
    "wardflow_late_events_total",
    "Events older than the state retention: cleaned and marked late.",
    ["stage"],
)
EVENTS_DROPPED = Counter(
    "wardflow_events_dropped_total",
    "Events dropped without a dead letter: nothing observed is left once unmapped codes are out.",
    ["stage", "reason"],
)
VALID, ARTIFACT, IMPOSSIBLE, UNMAPPED = (
    VALUES.labels(STAGE, outcome) for outcome in ("valid", "artifact", "impossible", "unmapped")
)
DUPLICATES = {
    reason: DUPLICATES_DROPPED.labels(STAGE, reason) for reason in ("event_id", "same_reading")
}
LATE = LATE_EVENTS.labels(STAGE)
NO_VITAL_SIGNS = EVENTS_DROPPED.labels(STAGE, "no_vital_signs")


def load_code_map(settings: CleaningSettings) -> CodeMap:
    """The shipped local code map, with the operator's file (if any) merged over it."""
    layers = [parse_local_codes(DEFAULT_LOCAL_CODES.read_text("utf-8"), DEFAULT_LOCAL_CODES.name)]
    if settings.local_codes_file:
        path = Path(settings.local_codes_file)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise LocalCodesError(
                f"WARDFLOW_LOCAL_CODES_FILE {path}: cannot read: {reason}"
            ) from None
        layers.append(parse_local_codes(text, str(path)))
    return CodeMap(*layers)


def rules_from(settings: CleaningSettings) -> CleaningRules:
    return CleaningRules(
        flat_line_seconds=settings.flat_line_seconds,
        max_clock_skew_seconds=settings.max_clock_skew_seconds,
        state_retention_seconds=settings.state_retention_seconds,
        dedupe_window_events=settings.dedupe_window_events,
        flat_line_memory=settings.flat_line_memory,
    )


class Cleaner:
    """The cleaning handler: the domain's rules and state, the clock, and the metrics."""

    def __init__(
        self, settings: CleaningSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.domain = EventCleaner(rules_from(settings), load_code_map(settings))
        self.clock = clock
        affine_conversions()  # derive the unit table from pint now, not on the first event

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output | Encoded]:
        try:
            cleaned = self.domain.clean(event, self.clock())
        except CleaningRejection as rejection:
            if rejection.reason == "impossible_value":
                IMPOSSIBLE.inc()
            raise Rejected(rejection.reason, rejection.detail) from None
        if cleaned.dropped == "no_vital_signs":
            NO_VITAL_SIGNS.inc()
        elif cleaned.dropped is not None:
            DUPLICATES[cleaned.dropped].inc()
        if cleaned.valid:
            VALID.inc(cleaned.valid)
        if cleaned.artifacts:
            ARTIFACT.inc(cleaned.artifacts)
        if cleaned.unmapped:
            UNMAPPED.inc(cleaned.unmapped)
        if cleaned.late:
            LATE.inc()
        if cleaned.recorded is not None:
            key = cleaned.recorded["patient_id"].encode()
            return [Encoded(EVENTS_CLEAN, key, encode_document(cleaned.recorded))]
        return [Output(EVENTS_CLEAN, cleaned.forwarded)] if cleaned.forwarded is not None else []


def build(settings: CleaningSettings, *, clock: Callable[[], datetime] = utc_now) -> StageRunner:
    """The cleaning stage; raises LocalCodesError when a local code map is invalid."""
    return StageRunner(STAGE, settings, [EVENTS_RAW], Cleaner(settings, clock=clock), clock=clock)
