"""The simulated hospital: arrivals, ED, wards, transfers, discharges, housekeeping and monitors.

Pure: no I/O and no clock. Time is passed in (`step(now)`, simulated time) and randomness comes from
the `random.Random` given at construction, so one seed, start and sequence of calls always produce
the same events (payloads for ingest, see `events.py`).

The simulator never knows which bed the scheduler chose: housekeeping cleans the beds it is told
are dirty (`beds_to_clean`).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from services.simulator.events import EventFactory, Payload, same_time
from services.simulator.physiology import (
    Baseline,
    Course,
    corrupt,
    draw_baseline,
    draw_course,
    measurements,
    observe,
)

ED, WARD_A, WARD_B, HDU, ICU = "ED", "WARD-A", "WARD-B", "HDU", "ICU"
WARDS = (ED, WARD_A, WARD_B, HDU, ICU)
"""The wards of the example hospital (services/common/hospital.toml)."""

ACUTE = (ED, WARD_A, WARD_B)
_INITIAL_WARDS = {ED: 0.1, WARD_A: 0.4, WARD_B: 0.35, HDU: 0.1, ICU: 0.05}
_ARRIVAL_WARDS = {ED: 0.7, WARD_B: 0.17, WARD_A: 0.08, HDU: 0.03, ICU: 0.02}
_FROM_ED_TO = {WARD_A: 0.6, WARD_B: 0.4}
FAHRENHEIT_EVERY_NTH_MONITOR = 10  # the second vendor: MON-010, MON-020, ... send [degF]


@dataclass(frozen=True)
class HospitalConfig:
    initial_patients: int = 40
    arrivals_per_hour: float = 3.0
    mean_stay_hours: float = 12.0
    vitals_interval_seconds: float = 60.0
    scheduled_vitals: bool = True  # False: only `readings()` produces vital signs (load mode)
    deteriorating_fraction: float = 0.15
    recovering_fraction: float = 0.6
    impossible_reading_fraction: float = 0.005
    max_patients: int = 95  # arrivals beyond this census are diverted to another hospital


@dataclass
class Patient:
    patient_id: str
    encounter_id: str
    device_id: str
    ward: str
    baseline: Baseline
    course: Course
    escalated: bool = False

    @property
    def monitor(self) -> int:
        return int(self.device_id.removeprefix("MON-"))


Action = Callable[[datetime], list[Payload]]


class Hospital:
    """A hospital in simulated time. `step(now)` returns every event due up to `now`, in order.

    `stamp` turns a simulated time into the `occurred_at` sent (default: the simulated time).
    Event and patient ids depend on the seed and `start`, so a rerun with the same seed against a
    stack that remembers the last run is not taken for duplicates.
    """

    def __init__(
        self,
        config: HospitalConfig,
        rng: random.Random,
        start: datetime,
        stamp: Callable[[datetime], datetime] = same_time,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.config, self.rng, self.now = config, rng, start
        ids = random.Random(f"{rng.getrandbits(64)}:{start.isoformat()}")
        self._events = EventFactory(ids, stamp)
        self._next_number = 1 + 1000 * ids.randrange(900)
        self._agenda: list[tuple[datetime, int, Action]] = []
        self._sequence = 0
        self._free_monitors: list[int] = []
        self._monitors_made = 0
        self._round_robin = 0
        self._in_housekeeping: set[tuple[str, str]] = set()
        self.patients: dict[str, Patient] = {}
        for _ in range(config.initial_patients):
            self._at(start, partial(self._admit, self._pick(_INITIAL_WARDS), True))
        if config.arrivals_per_hour > 0:
            self._at(start + self._interarrival(), self._arrival)

    def step(self, now: datetime) -> list[Payload]:
        """Advance simulated time to `now`; the events that happened since the last step."""
        if now < self.now:
            raise ValueError("simulated time cannot go backwards")
        events: list[Payload] = []
        while self._agenda and self._agenda[0][0] <= now:
            at, _, action = heapq.heappop(self._agenda)
            events.extend(action(at))
        self.now = now
        return events

    def beds_to_clean(self, dirty: Iterable[tuple[str, str]]) -> None:
        """Housekeeping will clean these `(ward, bed)`s: `cleaning`, then later `available`."""
        for ward, bed in dirty:
            if (ward, bed) not in self._in_housekeeping:
                self._in_housekeeping.add((ward, bed))
                starts = self.now + timedelta(minutes=self.rng.uniform(10, 40))
                self._at(starts, partial(self._bed_report, ward, bed, "cleaning"))

    def readings(self, now: datetime, count: int) -> list[Payload]:
        """`count` vital-signs events at `now`, taking the patients in turn (load generation)."""
        patients = [self.patients[pid] for pid in sorted(self.patients)]
        if not patients:
            return []
        first, self._round_robin = self._round_robin, self._round_robin + count
        return [self._reading(now, patients[(first + i) % len(patients)]) for i in range(count)]

    # -- patient flow ---------------------------------------------------------------------------

    def _arrival(self, at: datetime) -> list[Payload]:
        self._at(at + self._interarrival(), self._arrival)
        if len(self.patients) >= max(self.config.max_patients, self.config.initial_patients):
            return []  # diverted to another hospital
        return self._admit(self._pick(_ARRIVAL_WARDS), False, at)

    def _admit(self, ward: str, initial: bool, at: datetime) -> list[Payload]:
        number, self._next_number = self._next_number, self._next_number + 1
        monitor = self._take_monitor()
        config, rng = self.config, self.rng
        seen_from = at - timedelta(hours=6) if initial else at  # some are already ill at start
        course = draw_course(
            rng, seen_from, config.deteriorating_fraction, config.recovering_fraction
        )
        patient = Patient(
            f"P{number:06d}",
            f"E{number:06d}",
            f"MON-{monitor:03d}",
            ward,
            draw_baseline(rng),
            course,
        )
        pid = patient.patient_id
        self.patients[pid] = patient
        leaves = at + timedelta(hours=max(2.0, rng.expovariate(1 / config.mean_stay_hours)))
        if ward == ED:
            decided = at + timedelta(hours=rng.uniform(1, 4))
            self._at(decided, partial(self._ed_decision, pid))
            leaves = max(leaves, decided + timedelta(hours=2))
        if course.settled is not None:
            leaves = max(leaves, course.settled + timedelta(hours=1))
        self._at(leaves, partial(self._discharge, pid))
        worse = course.reaches(0.7)
        if worse is not None and worse > at:
            self._at(worse, partial(self._escalate, pid))
        if course.recovered is not None:
            self._at(max(course.recovered, at), partial(self._step_down, pid))
        if config.scheduled_vitals:
            first = at + timedelta(seconds=rng.uniform(0, config.vitals_interval_seconds))
            self._at(first, partial(self._vitals, pid))
        return [self._adt("PatientAdmitted", at, patient, ward=ward, bed=None)]

    def _ed_decision(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.get(pid)
        if patient is None or patient.ward != ED:
            return []
        if patient.course.onset is None and self.rng.random() < 0.25:
            return self._discharge(pid, at)  # sent home from the ED
        return self._transfer(patient, self._pick(_FROM_ED_TO), at)

    def _escalate(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.get(pid)
        if patient is None or self.rng.random() >= 0.6:
            return []
        target = HDU if patient.ward in ACUTE else ICU if patient.ward == HDU else None
        if target is None:
            return []
        patient.escalated = True
        return self._transfer(patient, target, at)

    def _step_down(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.get(pid)
        if patient is None or not patient.escalated or patient.ward in ACUTE:
            return []
        patient.escalated = False
        return self._transfer(patient, WARD_A, at)

    def _transfer(self, patient: Patient, ward: str, at: datetime) -> list[Payload]:
        from_ward, patient.ward = patient.ward, ward
        return [
            self._adt("PatientTransferred", at, patient, from_ward=from_ward, ward=ward, bed=None)
        ]

    def _discharge(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.pop(pid, None)
        if patient is None:
            return []
        heapq.heappush(self._free_monitors, patient.monitor)
        return [self._adt("PatientDischarged", at, patient, ward=patient.ward)]

    # -- monitors and housekeeping --------------------------------------------------------------

    def _vitals(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.get(pid)
        if patient is None:
            return []
        next_at = at + timedelta(seconds=self.config.vitals_interval_seconds)
        self._at(next_at, partial(self._vitals, pid))
        return [self._reading(at, patient)]

    def _reading(self, at: datetime, patient: Patient) -> Payload:
        reading = observe(patient.baseline, patient.course.severity(at), self.rng)
        fahrenheit = patient.monitor % FAHRENHEIT_EVERY_NTH_MONITOR == 0
        sent = measurements(reading, fahrenheit=fahrenheit)
        if self.rng.random() < self.config.impossible_reading_fraction:
            sent = corrupt(sent, self.rng)
        return self._events.event(
            "VitalSignsObserved",
            at,
            patient_id=patient.patient_id,
            device_id=patient.device_id,
            measurements=sent,
            supplemental_oxygen=reading.supplemental_oxygen,
            consciousness=reading.consciousness.value,
        )

    def _bed_report(self, ward: str, bed: str, status: str, at: datetime) -> list[Payload]:
        if status == "cleaning":
            done = at + timedelta(minutes=self.rng.uniform(20, 45))
            self._at(done, partial(self._bed_report, ward, bed, "available"))
        else:
            self._in_housekeeping.discard((ward, bed))
        return [self._events.event("BedStatusReported", at, ward=ward, bed=bed, status=status)]

    # -- plumbing -------------------------------------------------------------------------------

    def _at(self, at: datetime, action: Action) -> None:
        self._sequence += 1
        heapq.heappush(self._agenda, (at, self._sequence, action))

    def _take_monitor(self) -> int:
        if self._free_monitors:
            return heapq.heappop(self._free_monitors)
        self._monitors_made += 1
        return self._monitors_made

    def _pick(self, weights: dict[str, float]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def _interarrival(self) -> timedelta:
        return timedelta(hours=self.rng.expovariate(self.config.arrivals_per_hour))

    def _adt(self, kind: str, at: datetime, patient: Patient, **fields: object) -> Payload:
        ids = {"patient_id": patient.patient_id, "encounter_id": patient.encounter_id}
        return self._events.event(kind, at, **ids, **fields)
