"""The simulated hospital: arrivals, ED, wards, transfers, discharges, housekeeping and monitors.

Pure: no I/O and no clock. Time is passed in (`step(now)`, simulated time) and randomness comes from
the `random.Random` given at construction, so one seed, start and sequence of calls always produce
the same events (payloads for ingest, see `events.py`).

The simulator never knows which bed the scheduler chose: housekeeping cleans the beds it is told
are dirty (`beds_to_clean`).

Clinicians act too. A few patients get a ceiling of care on admission; a febrile deteriorating
patient may be suspected of infection; a nurse acknowledges the alert diagnosis raises when a
patient's illness reaches the NEWS2 medium and high bands (some are never acknowledged, so that
escalations happen); a deteriorating patient gets one white cell count about an hour into the
illness. These draw from their own random stream (derived from the same seed), so adding them left
the admissions, transfers, discharges and vital signs of a seed as they were, except escalations
that a patient's ceiling of care now rules out.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from schemas.care import CeilingOfCare
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
_CEILING_ALLOWS: dict[CeilingOfCare, tuple[str, ...]] = {
    "general": (),
    "hdu": (HDU,),
    "icu": (HDU, ICU),
}
_INITIAL_WARDS = {ED: 0.1, WARD_A: 0.4, WARD_B: 0.35, HDU: 0.1, ICU: 0.05}
_ARRIVAL_WARDS = {ED: 0.7, WARD_B: 0.17, WARD_A: 0.08, HDU: 0.03, ICU: 0.02}
_FROM_ED_TO = {WARD_A: 0.6, WARD_B: 0.4}
FAHRENHEIT_EVERY_NTH_MONITOR = 10  # the second vendor: MON-010, MON-020, ... send [degF]

MEDIUM_BAND_SEVERITY = 0.42
"""Severity at which a patient's readings score NEWS2 medium or higher more often than not.

Checked by scoring `observe()` readings with diagnosis's `assess` (200 baselines x 5 readings per
level): at 0.42, 58 % of readings score medium or high (mean aggregate 4.8); at 0.36 only 29 %.
Noisy readings raise the first alert somewhat earlier, so an acknowledgement timed from here
finds that alert already raised."""
HIGH_BAND_SEVERITY = 0.48
"""Severity at which readings score NEWS2 high more often than not: 54 % high at 0.48 (mean
aggregate 6.6, supplemental oxygen from 0.45 adds 2 points), 14 % at 0.42."""
ALERT_SEVERITIES = (MEDIUM_BAND_SEVERITY, HIGH_BAND_SEVERITY)

FEVER_CELSIUS = 38.0
CARE_ROLE_CEILING = "consultant"
CARE_ROLE_INFECTION = "foundation doctor"
CARE_ROLE_ACKNOWLEDGEMENT = "registered nurse"
WHITE_CELL_COUNT = ("white_cell_count", "10*9/L", "6690-2")  # parameter, UCUM unit, LOINC


@dataclass(frozen=True)
class HospitalConfig:
    initial_patients: int = 40
    arrivals_per_hour: float = 3.0
    mean_stay_hours: float = 12.0
    vitals_interval_seconds: float = 60.0
    scheduled_vitals: bool = True  # False: only `readings()` produces monitor readings (load mode)
    deteriorating_fraction: float = 0.15
    recovering_fraction: float = 0.6
    impossible_reading_fraction: float = 0.005
    max_patients: int = 95  # arrivals beyond this census are diverted to another hospital
    ceiling_general_fraction: float = 0.08  # admitted with a ceiling of ward-based care only
    ceiling_hdu_fraction: float = 0.05  # admitted with a ceiling of HDU (not for ICU)
    suspected_infection_probability: float = 0.7  # per deteriorating patient's first fever
    acknowledgement_mean_minutes: float = 12.0  # exponential delay after an alert-level crossing
    never_acknowledged_fraction: float = 0.15  # crossings whose alert nobody acknowledges
    lab_after_onset_minutes: float = 60.0  # white cell count of a deteriorating patient (+/- 10)


@dataclass
class Patient:
    patient_id: str
    encounter_id: str
    device_id: str
    ward: str
    baseline: Baseline
    course: Course
    escalated: bool = False
    # The highest level of care: "general", "hdu" or "icu" (no ceiling).
    ceiling: CeilingOfCare = "icu"
    fever_seen: bool = False  # a febrile reading was seen: infection was considered, once

    @property
    def sex(self) -> str:
        """Administrative sex, for single-sex bays: half female, half male, from the number
        alone (no random draw, so every other stream of the simulation stays as it was)."""
        return ("female", "male")[zlib.crc32(self.patient_id.encode()) % 2]

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
        seed_bits = rng.getrandbits(64)
        ids = random.Random(f"{seed_bits}:{start.isoformat()}")
        self._clinicians = random.Random(f"clinicians:{seed_bits}:{start.isoformat()}")
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
        admitted = [self._adt("PatientAdmitted", at, patient, ward=ward, bed=None, sex=patient.sex)]
        return admitted + self._plan_care(patient, at)

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
        if target is None or target not in _CEILING_ALLOWS[patient.ceiling]:
            return []  # the patient's ceiling of care rules this level out
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
            self._adt(
                "PatientTransferred",
                at,
                patient,
                from_ward=from_ward,
                ward=ward,
                bed=None,
                sex=patient.sex,
            )
        ]

    def _discharge(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.pop(pid, None)
        if patient is None:
            return []
        heapq.heappush(self._free_monitors, patient.monitor)
        return [self._adt("PatientDischarged", at, patient, ward=patient.ward)]

    # -- clinicians ------------------------------------------------------------------------------

    def _plan_care(self, patient: Patient, at: datetime) -> list[Payload]:
        """On admission: maybe a ceiling of care now; the alert acknowledgements and the white
        cell count this patient's course will call for, scheduled."""
        config, rng, pid = self.config, self._clinicians, patient.patient_id
        for crossed in alert_crossings(patient.course, at):
            if rng.random() >= config.never_acknowledged_fraction:
                mean = config.acknowledgement_mean_minutes
                delay = timedelta(minutes=rng.expovariate(1 / mean) if mean > 0 else 0.0)
                self._at(crossed + delay, partial(self._acknowledge, pid))
        onset = patient.course.onset
        if onset is not None:
            minutes = config.lab_after_onset_minutes + rng.uniform(-10, 10)
            taken = max(onset, at) + timedelta(minutes=max(0.0, minutes))
            self._at(taken, partial(self._white_cell_count, pid))
        draw = rng.random()
        if draw < config.ceiling_general_fraction:
            patient.ceiling = "general"
        elif draw < config.ceiling_general_fraction + config.ceiling_hdu_fraction:
            patient.ceiling = "hdu"
        else:
            return []
        return [
            self._events.event(
                "CeilingOfCareSet",
                at,
                patient_id=pid,
                ceiling=patient.ceiling,
                set_by_role=CARE_ROLE_CEILING,
            )
        ]

    def _consider_infection(self, patient: Patient, at: datetime, celsius: float) -> None:
        """A deteriorating patient's first fever: infection is suspected (or not), once."""
        onset = patient.course.onset
        if patient.fever_seen or onset is None or at <= onset or celsius <= FEVER_CELSIUS:
            return
        patient.fever_seen = True
        if self._clinicians.random() < self.config.suspected_infection_probability:
            later = at + timedelta(minutes=self._clinicians.uniform(3, 15))
            self._at(later, partial(self._suspect_infection, patient.patient_id))

    def _suspect_infection(self, pid: str, at: datetime) -> list[Payload]:
        if pid not in self.patients:
            return []
        return [
            self._events.event(
                "SuspectedInfectionSet",
                at,
                patient_id=pid,
                suspected=True,
                set_by_role=CARE_ROLE_INFECTION,
            )
        ]

    def _acknowledge(self, pid: str, at: datetime) -> list[Payload]:
        """Every alert raised for the patient up to now is seen (no `assessment_id`)."""
        if pid not in self.patients:
            return []
        return [
            self._events.event(
                "AlertAcknowledged",
                at,
                patient_id=pid,
                acknowledged_by_role=CARE_ROLE_ACKNOWLEDGEMENT,
            )
        ]

    def _white_cell_count(self, pid: str, at: datetime) -> list[Payload]:
        patient = self.patients.get(pid)
        if patient is None:
            return []
        value = white_cell_count(patient.course.severity(at), self._clinicians)
        parameter, unit, loinc = WHITE_CELL_COUNT
        measurement = {"parameter": parameter, "value": value, "unit": unit, "loinc": loinc}
        return [
            self._events.event("VitalSignsObserved", at, patient_id=pid, measurements=[measurement])
        ]

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
        self._consider_infection(patient, at, reading.temperature_celsius)
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


def alert_crossings(course: Course, admitted: datetime) -> list[datetime]:
    """When the course first reaches each alert level (NEWS2 medium, then high) while the patient
    is here. A level already reached at admission counts as reached then (the first readings
    raise the alert), the lower one only if the higher is not reached yet; a level reached and
    left again before admission does not count."""
    crossings: list[datetime] = []
    for level in ALERT_SEVERITIES:
        reached = course.reaches(level)
        if reached is None:
            continue
        if reached <= admitted:
            if course.severity(admitted) < level:
                continue
            reached = admitted
        crossings.append(reached)
    if len(crossings) == 2 and crossings[1] == admitted:
        return crossings[1:]
    return crossings


def white_cell_count(severity: float, rng: random.Random) -> float:
    """A white cell count (10^9/L) at a severity: 7 + 9 x severity, noisy, as a lab reports it."""
    return round(min(40.0, max(1.0, 7 + 9 * severity + rng.gauss(0, 1.0))), 1)
