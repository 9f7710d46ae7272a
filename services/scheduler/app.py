"""Scheduler service: ADT and housekeeping events, and critical-care bed requests -> live bed
state in Redis, decisions on Kafka."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.assessments import (
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
)
from schemas.base import Event
from schemas.beds import (
    BedRequestCancelled,
    BedRequested,
    BedStateSnapshot,
    BedStatusReported,
    WardAvailabilityUpdated,
)
from schemas.topics import (
    BEDS_AVAILABILITY,
    BEDS_STATE,
    TopicSpec,
)
from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.handlers import Output, Rejected
from services.common.hospital import HospitalLayout
from services.scheduler.decisions import (
    SOURCE,
    Cause,
    Sweep,
    bed_changed,
    derived_id,
    refused,
    released,
    reservations_let_go,
    waiting,
)
from services.scheduler.domain import (
    BLOCKED_REASONS,
    CRITICAL_CARE_LEVELS,
    allocation_restriction,
    critical_care_level,
    critical_care_match,
    patient_profile,
    placement_origin,
    queue_score,
    wards_at_level,
    with_assessment,
)
from services.scheduler.gauges import GaugeBoard, read_figures
from services.scheduler.metrics import (
    BEDS_BLOCKED,
    CRITICAL_CARE_OLDEST_WAIT,
    CRITICAL_CARE_REQUESTS,
    CRITICAL_CARE_WAITING,
    TRANSITIONS_REFUSED,
)
from services.scheduler.placed import bed_assigned, bed_reserved
from services.scheduler.policy import SchedulingPolicy, configured_policy
from services.scheduler.store import (
    Assignment,
    BedChange,
    CareRequest,
    ChangeResult,
    LevelResult,
    RedisBedStore,
)

log = logging.getLogger(__name__)

HANDLED_KINDS = frozenset(
    kind.__name__
    for kind in (
        PatientAdmitted,
        PatientTransferred,
        PatientDischarged,
        BedStatusReported,
        CriticalCareBedRequested,
        CriticalCareBedRequestWithdrawn,
        BedRequested,
        BedRequestCancelled,
        AssessmentIssued,
    )
)
"""The events `Scheduler` acts on: the stage skips the others (vital signs) without decoding."""


class Scheduler:
    """Applies clean events and critical-care bed requests to the bed store and says what
    happened on Kafka."""

    def __init__(
        self,
        store: RedisBedStore,
        layout: HospitalLayout,
        policy: SchedulingPolicy | None = None,
    ) -> None:
        """`policy`: queue priority and tariff; default the file WARDFLOW_SCHEDULER_POLICY_FILE
        names (empty: the built-in services/scheduler/policy.toml)."""
        self.store = store
        self.layout = layout
        self.policy = policy if policy is not None else configured_policy()
        self.gauges = GaugeBoard()
        log.info(
            "scheduling policy version=%s tariff=%s",
            self.policy.version,
            self.policy.tariff.version,
        )

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        return await self._handle(spec, event)

    async def tick(self, owned: frozenset[int]) -> Sequence[Output]:
        """Release reservations held past the policy's hold times (their patient never arrived):
        critical-care ones (the freed beds serve the level's queue) and bed managers' ward ones
        (the freed bed serves the ward's queue first). Every replica may sweep: each release is
        one script, idempotent by state."""
        outputs = await self._expire_ward_reservations()
        hold_seconds = self.policy.reservations.hold_minutes * 60
        for level in CRITICAL_CARE_LEVELS:
            wards = wards_at_level(self.layout, level)
            if not wards:
                continue
            now = datetime.now(UTC)
            sweep = Sweep(derived_id(uuid5(NAMESPACE_URL, now.isoformat()), f"expiry:{level}"), now)
            result = await self.store.expire_reservations(
                level.value, wards, hold_seconds, sweep.event_id
            )
            if result.expired:
                outputs += await self._level_outputs(sweep, result, f"cc:{level}:expiry")
        await self.refresh_gauges()
        return [*outputs, *await self.touched_snapshots()]  # a tick is not part of a batch

    async def _expire_ward_reservations(self) -> list[Output]:
        hold_seconds = self.policy.reservations.ward_hold_minutes * 60
        outputs: list[Output] = []
        for ward in self.layout.wards:
            now = datetime.now(UTC)
            sweep_id = derived_id(uuid5(NAMESPACE_URL, now.isoformat()), f"expiry:{ward.id}")
            sweep = Sweep(sweep_id, now)
            result = await self.store.expire_ward_reservations(ward.id, hold_seconds, sweep_id)
            if result.expired:
                outputs += await self._report(sweep, result, step="expiry:")
        return outputs

    async def refresh_gauges(self) -> None:
        """Every ward's and critical-care queue's gauges from Redis: also those this replica did
        not change, and the oldest waits, which grow with time."""
        wards, queues = await read_figures(self.store.redis, self.store.keys, self.layout)
        self.gauges.show(wards, queues)

    async def touched_snapshots(self) -> list[Output]:
        """After each batch, before its offsets are committed: a snapshot of every ward or queue
        the batch touched, so the compacted beds.state always holds Redis's latest state
        (`wardflow state rebuild`). Once per batch: only the latest state per scope matters."""
        return await self.snapshots(self.store.take_touched())

    async def snapshots(self, scopes: Sequence[str]) -> list[Output]:
        outputs = []
        for scope in scopes:
            taken = await self.store.snapshot(scope)
            now = datetime.now(UTC)
            snapshot = BedStateSnapshot(
                event_id=uuid5(NAMESPACE_URL, f"wardflow:beds-state:{scope}:{taken.taken_at_us}"),
                occurred_at=now,
                recorded_at=now,
                source=SOURCE,
                scope=scope,
                taken_at_us=taken.taken_at_us,
                hashes=taken.hashes,
                sorted_sets=taken.sorted_sets,
            )
            outputs.append(Output(BEDS_STATE, snapshot))
        return outputs

    async def initial_snapshots(self) -> list[Output]:
        """Every ward and critical-care level, once at start: beds.state then describes beds
        that never changed too."""
        now = datetime.now(UTC)
        start = Sweep(uuid5(NAMESPACE_URL, f"wardflow:scheduler-start:{now.isoformat()}"), now)
        placed = await self._new_bed_outputs(start)  # beds the layout file added at start
        scopes = [f"ward:{ward.id}" for ward in self.layout.wards]
        scopes += [f"level:{level.value}" for level in CRITICAL_CARE_LEVELS]
        return [*placed, *await self.snapshots(scopes)]

    async def apply_layout(
        self, layout: HospitalLayout, ward_id: str, cause: Cause
    ) -> list[Output]:
        """Use `layout` from now on (one ward changed on hospital.layout; `follower.py` has
        changed its beds in Redis) and say how that ward stands: the patients its new beds took,
        a level's queue served by them, its snapshot and availability."""
        self.layout = layout
        outputs = await self._new_bed_outputs(cause)
        now = datetime.now(UTC)
        common = {"occurred_at": now, "recorded_at": now, "source": SOURCE}
        what = f"{ward_id}:layout"
        availability = await self._availability(ward_id, cause.event_id, common, what)
        scopes = [f"ward:{ward_id}"]
        level = critical_care_level(layout, ward_id)
        if level is not None:  # new beds of an HDU/ICU ward serve the level's queue
            served = await self.store.reserve(
                level.value, wards_at_level(layout, level), cause.event_id, step=f"{what}:serve"
            )
            outputs += await self._level_outputs(cause, served, f"{what}:serve")
            scopes.append(f"level:{level.value}")
        return [*outputs, *await self.snapshots(scopes), availability]

    async def _new_bed_outputs(self, cause: Cause) -> list[Output]:
        """BedStatusChanged and BedAssigned for each waiting patient a new bed took."""
        now = datetime.now(UTC)
        common = {"occurred_at": now, "recorded_at": now, "source": SOURCE}
        outputs: list[Output] = []
        for ward_id, placed in self.store.take_new_bed_placements():
            what = f"new-bed:{placed.bed}"
            change = BedChange(placed.bed, BedStatus.AVAILABLE, BedStatus(placed.status))
            outputs.append(bed_changed(cause, ward_id, change, what, common))
            outputs.append(self._placed(cause, ward_id, placed, now, common, what))
        return outputs

    async def _handle(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        if isinstance(event, PatientAdmitted):
            return await self._place(event, event.ward, event.bed)
        if isinstance(event, PatientTransferred):
            self._known_ward(event.from_ward)
            self._known_ward(event.ward)  # both checked before anything changes
            # The acuity known in the ward they leave goes with them (read before the release
            # forgets it there): it sets their place if they wait for the new ward.
            previous = await self.store.profile(event.from_ward, event.patient_id)
            released = await self.store.transition(
                event.from_ward,
                event.event_id,
                BedStatus.DIRTY,
                patient_id=event.patient_id,
                step="release",
            )
            placed = await self._place(event, event.ward, event.bed, previous)
            return [*await self._report(event, released, step="release"), *placed]
        if isinstance(event, PatientDischarged):
            self._known_ward(event.ward)
            result = await self.store.transition(
                event.ward, event.event_id, BedStatus.DIRTY, patient_id=event.patient_id
            )
            return await self._report(event, result)
        if isinstance(event, BedStatusReported):
            self._known_ward(event.ward)
            result = await self.store.transition(
                event.ward,
                event.event_id,
                BedStatus(event.status),
                bed=event.bed,
                blocked_reason=event.blocked_reason or "unspecified",
            )
            return await self._report(event, result, requested=BedStatus(event.status))
        if isinstance(event, CriticalCareBedRequested):
            return await self._request_critical_care(event)
        if isinstance(event, CriticalCareBedRequestWithdrawn):
            withdrawn = await self._withdraw_critical_care(event, event.request_id, event.reason)
            if withdrawn is None:
                log.info("withdrawal of an unknown critical-care request: nothing to do")
            return withdrawn or []
        if isinstance(event, BedRequested):
            return await self._request_bed(event)
        if isinstance(event, BedRequestCancelled):
            return await self._cancel_request(event)
        if isinstance(event, AssessmentIssued):
            return await self._reprioritise(event)
        return []  # vital signs are fusion's; escalations are for clinicians

    def _known_ward(self, ward: str) -> None:
        if self.layout.ward(ward) is None:
            raise Rejected("unknown_ward", f"ward {ward!r} is not in hospital layout")

    def _eligible(
        self, ward_id: str, event: PatientAdmitted | PatientTransferred | BedRequested
    ) -> tuple[str, ...] | None:
        """The beds of the ward the patient may be given (needs, bay sex policy); None: any."""
        ward = self.layout.ward(ward_id)
        assert ward is not None  # checked by _known_ward
        return allocation_restriction(ward, event.needs, event.sex)

    def _profile(
        self,
        event: PatientAdmitted | PatientTransferred | BedRequested,
        band: str | None,
        aggregate: int | None,
    ) -> tuple[str, float]:
        """The patient's profile for the ward (JSON) and their queue score: wait start (the
        request's recording time) minus the credit of the acuity known (none: no credit)."""
        since = event.recorded_at.timestamp()
        profile = patient_profile(
            sex=event.sex, needs=event.needs, band=band, aggregate=aggregate, since=since
        )
        return profile, queue_score(since, band, aggregate, self.policy.priority)

    async def _place(
        self,
        event: PatientAdmitted | PatientTransferred,
        ward: str,
        bed: str | None,
        previous: dict[str, Any] | None = None,
    ) -> list[Output]:
        """Allocate a bed of the ward (or queue the patient by acuity, then wait), or put the
        patient in the EHR's named bed. `previous`: their profile in the ward they come from."""
        self._known_ward(ward)
        band = (previous or {}).get("band")
        aggregate = (previous or {}).get("aggregate")
        profile, score = self._profile(event, band, aggregate)
        if bed is None:
            from_ward = event.from_ward if isinstance(event, PatientTransferred) else None
            result = await self.store.allocate(
                ward,
                event.patient_id,
                event.event_id,
                event.recorded_at.timestamp(),
                origin=placement_origin(self.layout, from_ward),
                eligible=self._eligible(ward, event),
                score=score,
                profile=profile,
            )
        else:
            result = await self.store.transition(
                ward,
                event.event_id,
                BedStatus.OCCUPIED,
                bed=bed,
                patient_id=event.patient_id,
                profile=profile,
            )
        return await self._report(event, result, requested=BedStatus.OCCUPIED)

    async def _reprioritise(self, event: AssessmentIssued) -> list[Output]:
        """A new assessment of a patient waiting for a bed of their ward moves them in its queue
        (acuity first, then waiting time); for an occupant it updates what a later critical-care
        request will know. An assessment without a band (incomplete data, only a lower bound)
        changes nothing: missing data never lowers, or raises, a priority."""
        if event.band is None or event.ward is None or self.layout.ward(event.ward) is None:
            return []
        known = await self.store.profile(event.ward, event.patient_id)
        if known is None:
            return []
        updated = with_assessment(known, event.band, event.aggregate)
        since = float(updated.get("since", event.recorded_at.timestamp()))
        score = queue_score(since, event.band, event.aggregate, self.policy.priority)
        await self.store.rescore(
            event.ward,
            event.patient_id,
            json.dumps(updated, sort_keys=True),
            score,
            event.event_id,
        )
        return []

    async def _request_bed(self, event: BedRequested) -> list[Output]:
        """A bed manager's request: for a ward, a bed of it is reserved for the patient at once
        (or they wait for the ward, by acuity, and the first bed freed that fits them is reserved
        for them), until the ADT that moves them in confirms it or the policy's ward hold time
        expires; for a level, as a critical-care request."""
        if event.level_of_care is not None:
            return await self._request_critical_care(event)
        assert event.ward is not None  # the contract wants a ward or a level
        self._known_ward(event.ward)
        profile, score = self._profile(event, event.band.value if event.band else None, None)
        result = await self.store.allocate(
            event.ward,
            event.patient_id,
            event.event_id,
            event.recorded_at.timestamp(),
            origin="manual",
            request_id=event.event_id,
            eligible=self._eligible(event.ward, event),
            score=score,
            profile=profile,
        )
        return await self._report(event, result, requested=BedStatus.OCCUPIED)

    async def _cancel_request(self, event: BedRequestCancelled) -> list[Output]:
        """Withdraw a bed manager's request: a critical-care one (queued or holding a bed, looked
        for at each level), else a ward wait it queued (looked for in each ward). A request
        already served, withdrawn or never seen changes nothing."""
        found = await self._withdraw_critical_care(event, event.request_id, "cancelled")
        if found is not None:
            return found
        for ward in self.layout.wards:
            result = await self.store.cancel_wait(ward.id, event.request_id, event.event_id)
            if result.outcome == "withdrawn":
                return await self._report(event, result)
        log.info("cancellation of an unknown or settled bed request: nothing to do")
        return []

    async def _report(
        self,
        cause: Cause,
        result: ChangeResult,
        requested: BedStatus | None = None,
        step: str = "",
    ) -> list[Output]:
        now = datetime.now(UTC)
        common = {"occurred_at": now, "recorded_at": now, "source": SOURCE}
        outputs: list[Output] = []
        blocked: Any = result.blocked_reason  # a RecordedBlockedReason, validated by the model
        for index, change in enumerate(result.changes):
            # The step tells apart the release and the placement of a transfer within one
            # ward: both are changes of that ward, by one event.
            what = f"{result.ward}:{step}change:{index}"
            reason = blocked if change.status == BedStatus.BLOCKED else None
            outputs.append(bed_changed(cause, result.ward, change, what, common, reason))
        if result.assigned is not None:
            outputs.append(
                self._placed(cause, result.ward, result.assigned, now, common, "assigned")
            )
        for index, placed in enumerate(result.served):
            what = f"{step}served:{index}"
            outputs.append(self._placed(cause, result.ward, placed, now, common, what))
        ward = self.layout.ward(result.ward)
        outputs += reservations_let_go(cause, result, step, ward.level_of_care if ward else None)
        if result.outcome == "waiting":
            assert isinstance(cause, Event)  # a sweep queues nobody
            # no_matching_bed: beds are free but none fits the patient's needs or sex.
            reason = result.waiting_reason or "no_bed_available"
            patient_id: str = cause.patient_id  # type: ignore[attr-defined]
            outputs.append(
                waiting(cause, patient_id, result.ward, reason, f"{result.ward}:waiting")
            )
        if result.outcome in ("refused", "unknown_bed") and requested is not None:
            assert isinstance(cause, Event)  # a sweep changes no bed by request
            TRANSITIONS_REFUSED.labels(result.ward).inc()
            outputs.append(refused(cause, result, requested, common))
        if result.changes or result.outcome in ("waiting", "withdrawn"):
            outputs.append(
                await self._availability(
                    result.ward, cause.event_id, common, f"{result.ward}:{step}availability"
                )
            )
        return [*outputs, *await self._settle(cause, result, step)]

    async def _settle(self, cause: Cause, result: ChangeResult, step: str) -> list[Output]:
        """After a change in an HDU/ICU ward: a freed bed serves the level's queue, a request whose
        patient got a bed is closed, one whose reserved bed was taken is queued again (ward
        reservations are the ward script's: settled there)."""
        level = critical_care_level(self.layout, result.ward)
        freed = any(change.status == BedStatus.AVAILABLE for change in result.changes)
        fulfilled, displaced = result.fulfilled, result.displaced
        if fulfilled is not None and fulfilled.kind != "critical_care":
            fulfilled = None
        if displaced is not None and displaced.kind != "critical_care":
            displaced = None
        if level is None or not (freed or fulfilled or displaced):
            return []
        tag = f"{result.ward}:{step}"
        outputs: list[Output] = []
        settled = await self.store.reserve(
            level.value,
            wards_at_level(self.layout, level),
            cause.event_id,
            step=f"{tag}:settle",
            request=displaced,
            score=self._score(displaced) if displaced else None,  # its priority, kept
            requeue=True,
            close=fulfilled.request_id if fulfilled else None,
        )
        return [*outputs, *await self._level_outputs(cause, settled, f"{tag}:settle")]

    async def _request_critical_care(
        self, event: CriticalCareBedRequested | BedRequested
    ) -> list[Output]:
        """Diagnosis's request, or a bed manager's for a level (no NEWS2 aggregate: the band
        alone, if given, sets its acuity credit)."""
        known = None
        if isinstance(event, BedRequested):
            assert event.level_of_care is not None and event.from_ward is not None
            level, from_ward, aggregate = LevelOfCare(event.level_of_care), event.from_ward, None
            band = event.band.value if event.band is not None else None
            sex, needs = event.sex, list(event.needs)
        else:
            level, from_ward = LevelOfCare(event.level_of_care), event.ward
            band, aggregate = event.band.value, event.aggregate
            sex, needs = None, []
        if from_ward is not None and self.layout.ward(from_ward) is not None:
            # What the patient's ward knows of them (sex, needs) fills what the request omits.
            known = await self.store.profile(from_ward, event.patient_id)
        if known:
            sex = sex or known.get("sex")
            needs = needs or list(known.get("needs") or [])
        wards = wards_at_level(self.layout, level)
        if not wards:
            CRITICAL_CARE_REQUESTS.labels(level.value, "no_ward").inc()
            what = f"cc:{level}:no_ward"
            reason = "no_ward_at_level_of_care"
            return [
                waiting(event, event.patient_id, from_ward, reason, what,
                        level=level, request_id=event.event_id)
            ]  # fmt: skip
        request = CareRequest(
            request_id=event.event_id,
            patient_id=event.patient_id,
            level=level.value,
            requested_at_epoch=event.recorded_at.timestamp(),
            from_ward=from_ward,
            state="waiting",
            band=band,
            aggregate=aggregate,
            match=critical_care_match(self.layout, level, from_ward, sex, needs),
        )
        result = await self.store.reserve(
            level.value,
            wards,
            event.event_id,
            step="request",
            request=request,
            score=self._score(request),
        )
        return await self._level_outputs(event, result, f"cc:{level}:request")

    def _score(self, request: CareRequest) -> float:
        """The request's place in its level's queue: acuity first, then waiting time."""
        return queue_score(
            request.requested_at_epoch, request.band, request.aggregate, self.policy.priority
        )

    async def _withdraw_critical_care(
        self, event: Event, request_id: UUID, reason: str
    ) -> list[Output] | None:
        """None when no level knows the request. The withdrawal does not say the level: the
        request is looked for at each level in turn."""
        for level in CRITICAL_CARE_LEVELS:
            wards = wards_at_level(self.layout, level)
            result = await self.store.withdraw(level.value, wards, request_id, event.event_id)
            if result.outcome != "unknown":
                return await self._level_outputs(
                    event, result, f"cc:{level}:withdraw", withdrawal_reason=reason
                )
        return None

    async def _level_outputs(
        self,
        cause: Cause,
        result: LevelResult,
        tag: str,
        withdrawal_reason: str | None = None,
    ) -> list[Output]:
        """The outputs of a critical-care script: bed changes, assignments of patients waiting for
        a freed bed, reservations, a waiting or withdrawn request, and the wards' availability."""
        now = datetime.now(UTC)
        common = {"occurred_at": now, "recorded_at": now, "source": SOURCE}
        level = LevelOfCare(result.level)
        outputs: list[Output] = []
        for index, change in enumerate(result.changes):
            what = f"{tag}:change:{index}"
            outputs.append(bed_changed(cause, change.ward, change, what, common))
        for index, placed in enumerate(result.assigned):
            what = f"{tag}:assigned:{index}"
            outputs.append(self._placed(cause, placed.ward, placed.assignment, now, common, what))
        for lapsed in result.expired:
            CRITICAL_CARE_REQUESTS.labels(level.value, "expired").inc()
            what = f"{tag}:expired:{lapsed.request_id}"
            outputs.append(released(cause, lapsed, "reservation_expired", what))
        for held in result.reserved:
            CRITICAL_CARE_REQUESTS.labels(level.value, "reserved").inc()
            outputs.append(
                bed_reserved(cause, held, level, now, common, tag, self.policy.tariff, measure=True)
            )
        request = result.request
        if result.outcome == "already" and request is not None and request.state == "reserved":
            # The patient already held a bed of this level (a newer request id took it over).
            outputs.append(
                bed_reserved(cause, request, level, now, common, tag, self.policy.tariff)
            )
        still_queued = result.outcome in ("waiting", "already")
        if request is not None and request.state == "waiting" and still_queued:
            if result.outcome == "waiting":
                CRITICAL_CARE_REQUESTS.labels(level.value, "waiting").inc()
            outputs.append(
                waiting(
                    cause, request.patient_id, request.from_ward, result.waiting_reason,
                    f"{tag}:waiting", level=level, request_id=request.request_id,
                )
            )  # fmt: skip
        if result.outcome == "withdrawn" and request is not None:
            CRITICAL_CARE_REQUESTS.labels(level.value, "withdrawn").inc()
            outputs.append(
                released(
                    cause,
                    request,
                    "request_withdrawn",
                    f"{tag}:released",
                    withdrawal_reason=withdrawal_reason,
                )
            )
        for ward_id in result.wards_changed:
            what = f"{tag}:{ward_id}:availability"
            outputs.append(await self._availability(ward_id, cause.event_id, common, what))
        queued = await self.store.critical_care_waiting(level.value)
        CRITICAL_CARE_WAITING.labels(level.value).set(queued)
        if queued == 0:  # a longer wait is read at the next tick
            CRITICAL_CARE_OLDEST_WAIT.labels(level.value).set(0)
        return outputs

    def _placed(
        self,
        cause: Cause,
        ward_id: str,
        placement: Assignment,
        now: datetime,
        common: dict[str, Any],
        what: str,
    ) -> Output:
        ward = self.layout.ward(ward_id)
        level = ward.level_of_care if ward else None
        return bed_assigned(cause, ward_id, level, placement, now, common, what, self.policy.tariff)

    async def _availability(
        self, ward_id: str, cause: UUID, common: dict[str, Any], what: str = ""
    ) -> Output:
        counts, waiting, blocked = await self.store.ward_counts(ward_id)
        ward = self.layout.ward(ward_id)
        assert ward is not None
        self.gauges.ward_counts(ward_id, ward.level_of_care.value, counts, waiting)
        for reason in BLOCKED_REASONS:
            BEDS_BLOCKED.labels(ward_id, reason).set(blocked.get(reason, 0))
        return Output(
            BEDS_AVAILABILITY,
            WardAvailabilityUpdated(
                event_id=derived_id(cause, what or f"{ward_id}:availability"),
                ward=ward_id,
                level_of_care=ward.level_of_care,
                beds_by_status=counts,
                total_beds=sum(counts.values()),
                **common,
            ),
        )
