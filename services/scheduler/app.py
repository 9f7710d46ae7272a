"""Scheduler service: ADT and housekeeping events -> live bed state in Redis, decisions on Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from prometheus_client import Counter, Gauge, Histogram

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.base import Event
from schemas.beds import (
    BedAssigned,
    BedRequestWaiting,
    BedStatusChanged,
    BedStatusReported,
    BedTransitionRefused,
    WardAvailabilityUpdated,
)
from schemas.topics import BEDS_AVAILABILITY, BEDS_EVENTS, SCHEDULING_DECISIONS, TopicSpec
from schemas.vocabulary import BedStatus
from services.common import metrics
from services.common.hospital import HospitalLayout
from services.common.stage import Output, Rejected
from services.scheduler.domain import count_by_status
from services.scheduler.store import ChangeResult, RedisBedStore

STAGE = "scheduler"
SOURCE = "wardflow-scheduler"

BEDS = Gauge("wardflow_beds", "Beds by ward and status.", ["ward", "status"])
BED_REQUESTS_WAITING = Gauge(
    "wardflow_bed_requests_waiting", "Patients waiting for a bed.", ["ward"]
)
ALLOCATIONS = Counter("wardflow_bed_allocations_total", "Beds given to patients.", ["ward"])
TRANSITIONS_REFUSED = Counter(
    "wardflow_bed_transitions_refused_total", "Illegal bed changes refused.", ["ward"]
)
TIME_TO_BED_SECONDS = Histogram(
    "wardflow_time_to_bed_seconds",
    "From the bed request to the bed, by level of care.",
    ["level_of_care"],
    buckets=(0.1, 1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200),
)


def _derived_id(cause: UUID, what: str) -> UUID:
    """Deterministic ids for derived events: a redelivered cause produces identical outputs."""
    return uuid5(NAMESPACE_URL, f"wardflow:scheduler:{cause}:{what}")


class Scheduler:
    """Applies clean events to the bed store and says what happened on Kafka."""

    def __init__(self, store: RedisBedStore, layout: HospitalLayout) -> None:
        self.store = store
        self.layout = layout

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        if isinstance(event, PatientAdmitted):
            return await self._place(event, event.ward, event.bed)
        if isinstance(event, PatientTransferred):
            self._known_ward(event.from_ward)
            self._known_ward(event.ward)  # both checked before anything changes
            released = await self.store.transition(
                event.from_ward,
                event.event_id,
                BedStatus.DIRTY,
                patient_id=event.patient_id,
                step="release",
            )
            placed = await self._place(event, event.ward, event.bed)
            return [*await self._report(event, released), *placed]
        if isinstance(event, PatientDischarged):
            self._known_ward(event.ward)
            result = await self.store.transition(
                event.ward, event.event_id, BedStatus.DIRTY, patient_id=event.patient_id
            )
            return await self._report(event, result)
        if isinstance(event, BedStatusReported):
            self._known_ward(event.ward)
            result = await self.store.transition(
                event.ward, event.event_id, BedStatus(event.status), bed=event.bed
            )
            return await self._report(event, result, requested=BedStatus(event.status))
        return []  # vital signs are fusion's

    def _known_ward(self, ward: str) -> None:
        if self.layout.ward(ward) is None:
            raise Rejected("unknown_ward", f"ward {ward!r} is not in hospital layout")

    async def _place(
        self, event: PatientAdmitted | PatientTransferred, ward: str, bed: str | None
    ) -> list[Output]:
        self._known_ward(ward)
        if bed is None:
            result = await self.store.allocate(
                ward, event.patient_id, event.event_id, event.recorded_at.timestamp()
            )
        else:
            result = await self.store.transition(
                ward, event.event_id, BedStatus.OCCUPIED, bed=bed, patient_id=event.patient_id
            )
        return await self._report(event, result, requested=BedStatus.OCCUPIED)

    async def _report(
        self, cause: Event, result: ChangeResult, requested: BedStatus | None = None
    ) -> list[Output]:
        now = datetime.now(UTC)
        common = {"occurred_at": now, "recorded_at": now, "source": SOURCE}
        outputs: list[Output] = []
        for index, change in enumerate(result.changes):
            outputs.append(
                Output(
                    BEDS_EVENTS,
                    BedStatusChanged(
                        event_id=_derived_id(cause.event_id, f"{result.ward}:change:{index}"),
                        ward=result.ward,
                        bed=change.bed,
                        previous_status=change.previous,
                        status=change.status,
                        cause_event_id=cause.event_id,
                        **common,
                    ),
                )
            )
        if result.assigned is not None:
            outputs.append(self._assigned(cause, result, now, common))
        if result.outcome == "waiting":
            outputs.append(
                Output(
                    SCHEDULING_DECISIONS,
                    BedRequestWaiting(
                        event_id=_derived_id(cause.event_id, f"{result.ward}:waiting"),
                        patient_id=cause.patient_id,  # type: ignore[attr-defined]
                        ward=result.ward,
                        reason="no_bed_available",
                        cause_event_id=cause.event_id,
                        **common,
                    ),
                )
            )
        if result.outcome in ("refused", "unknown_bed") and requested is not None:
            TRANSITIONS_REFUSED.labels(result.ward).inc()
            outputs.append(self._refused(cause, result, requested, common))
        if result.changes or result.outcome in ("waiting", "withdrawn"):
            outputs.append(await self._availability(result.ward, cause.event_id, common))
        return outputs

    def _assigned(
        self, cause: Event, result: ChangeResult, now: datetime, common: dict[str, Any]
    ) -> Output:
        assert result.assigned is not None
        wait = max(0.0, now.timestamp() - result.assigned.requested_at_epoch)
        ward = self.layout.ward(result.ward)
        level = ward.level_of_care.value if ward else "unknown"
        ALLOCATIONS.labels(result.ward).inc()
        TIME_TO_BED_SECONDS.labels(level).observe(wait)
        metrics.END_TO_END_LATENCY_SECONDS.labels(STAGE).observe(
            max(0.0, (now - cause.recorded_at).total_seconds())
        )
        return Output(
            SCHEDULING_DECISIONS,
            BedAssigned(
                event_id=_derived_id(cause.event_id, f"{result.ward}:assigned"),
                patient_id=result.assigned.patient_id,
                ward=result.ward,
                bed=result.assigned.bed,
                cause_event_id=cause.event_id,
                wait_seconds=wait,
                **common,
            ),
        )

    def _refused(
        self, cause: Event, result: ChangeResult, requested: BedStatus, common: dict[str, Any]
    ) -> Output:
        if result.outcome == "unknown_bed":
            reason = f"bed {result.bed!r} is not in ward {result.ward!r}"
        else:
            reason = f"a {result.previous} bed cannot become {requested.value}"
        return Output(
            SCHEDULING_DECISIONS,
            BedTransitionRefused(
                event_id=_derived_id(cause.event_id, f"{result.ward}:refused"),
                ward=result.ward,
                bed=result.bed,
                current_status=result.previous,
                requested_status=requested,
                reason=reason,
                cause_event_id=cause.event_id,
                **common,
            ),
        )

    async def _availability(self, ward_id: str, cause: UUID, common: dict[str, Any]) -> Output:
        statuses = await self.store.statuses(ward_id)
        counts = count_by_status(list(statuses.values()))
        waiting = await self.store.waiting_count(ward_id)
        for status, count in counts.items():
            BEDS.labels(ward_id, status.value).set(count)
        BED_REQUESTS_WAITING.labels(ward_id).set(waiting)
        ward = self.layout.ward(ward_id)
        assert ward is not None
        return Output(
            BEDS_AVAILABILITY,
            WardAvailabilityUpdated(
                event_id=_derived_id(cause, f"{ward_id}:availability"),
                ward=ward_id,
                level_of_care=ward.level_of_care,
                beds_by_status=counts,
                total_beds=len(statuses),
                **common,
            ),
        )
