"""Scoring speed in the pure domain code: NEWS2 assessments per second on one core.

No broker, no processes: the diagnosis rules on realistic patient states in a loop, so that
scoring can be compared with the stages around it (it must never be the bottleneck).
`diagnosis_decision` is everything the diagnosis service does per snapshot short of Kafka and
metrics: NEWS2, qSOFA/SIRS/shock index, then alert hygiene, alerts, bed requests and pathways,
with each patient's alert state and held improvement kept from one snapshot to the next.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from uuid import NAMESPACE_URL, uuid4, uuid5

from bench.common import Options
from schemas.assessments import AlertStateUpdated, AssessmentIssued
from schemas.care import CarePlan
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Consciousness
from services.common.hospital import HospitalLayout, load_layout
from services.diagnosis.alerting import Context, on_assessment
from services.diagnosis.domain import ScoringPolicy, assess
from services.diagnosis.rules import DEFAULT_RULES
from services.diagnosis.scores import qsofa, sirs, with_sepsis_scores

TARGET_PER_SECOND = 20_000
WARD = "WARD-A"  # a general ward of the built-in layout: bed requests apply


def states(count: int, now: datetime) -> list[PatientStateUpdated]:
    random, at = Random(3), now - timedelta(minutes=2)
    result = []
    for number in range(count):

        def reading(low: float, high: float) -> NumericReading:
            return NumericReading(
                value=round(random.uniform(low, high), 1), observed_at=at, source="m"
            )

        readings = PatientReadings(
            respiratory_rate_per_min=reading(8, 30),
            spo2_percent=reading(85, 100),
            systolic_bp_mmhg=reading(85, 180),
            heart_rate_bpm=reading(40, 140),
            temperature_celsius=reading(35, 40),
            supplemental_oxygen=OxygenReading(
                on_supplemental_oxygen=random.random() < 0.2, observed_at=at, source="m"
            ),
            consciousness=ConsciousnessReading(
                level=random.choice(list(Consciousness)), observed_at=at, source="m"
            ),
        )
        result.append(
            PatientStateUpdated(
                event_id=uuid4(),
                occurred_at=now,
                recorded_at=now,
                source="bench",
                patient_id=f"p{number}",
                version=1,
                ward=WARD,
                encounter_status="in_progress",
                readings=readings,
                care=CarePlan(
                    ceiling=random.choice(["icu", "icu", "icu", "hdu", "general"]),
                    suspected_infection=random.random() < 0.3,
                ),
                cause_recorded_at=now,
            )
        )
    return result


class Decider:
    """`Diagnoser.__call__` without Kafka or metrics: per snapshot, NEWS2 with the sepsis scores,
    then `on_assessment` against the patient's alert state and held improvement, both kept for
    the next snapshot as the service keeps them. The clock is read per snapshot, as there."""

    def __init__(self, layout: HospitalLayout) -> None:
        self.layout = layout
        self.policy = ScoringPolicy(rules=DEFAULT_RULES)
        self.states: dict[str, AlertStateUpdated] = {}
        self.pending: dict[str, AssessmentIssued] = {}
        self.issued = 0  # snapshots that issued an assessment (the rest said nothing new)

    def context(self, state: PatientStateUpdated) -> Context:  # as Diagnoser.context
        ward = None if state.ward is None else self.layout.ward(state.ward)
        return Context(
            care=state.care,
            ward=state.ward,
            ward_level=None if ward is None else ward.level_of_care,
            discharged=state.encounter_status == "finished",
        )

    def __call__(self, state: PatientStateUpdated) -> None:
        now, policy, patient = datetime.now(UTC), self.policy, state.patient_id
        event_id = uuid5(NAMESPACE_URL, f"wardflow:assessment:{state.event_id}")
        assessment = assess(state, now, policy, event_id=event_id, source="wardflow-diagnosis")
        assessment = with_sepsis_scores(assessment, state.readings, now, policy.max_age_seconds)
        decision = on_assessment(
            self.states.get(patient),
            self.pending.get(patient),
            assessment,
            self.context(state),
            now,
            policy.rules,
        )
        if decision.pending is None:
            self.pending.pop(patient, None)
        else:
            self.pending[patient] = decision.pending
        if decision.changed:
            self.states[patient] = decision.state
        self.issued += any(isinstance(o, AssessmentIssued) for o in decision.outputs)


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    now = datetime.now(UTC)
    population, policy, ages = states(1_000, now), ScoringPolicy(), ScoringPolicy().max_age_seconds
    decider, results = Decider(load_layout("")), []
    rules_only = "the pure diagnosis rules on 1,000 realistic patient states in turn"
    for name, description, score in (
        ("news2_assessment", rules_only,
         lambda s: assess(s, now, policy, event_id=s.event_id, source="b")),
        ("news2_qsofa_sirs", rules_only, lambda s: (
            assess(s, now, policy, event_id=s.event_id, source="b"),
            qsofa(s.readings, now, max_age_seconds=ages),
            sirs(s.readings, now, max_age_seconds=ages),
        )),
        ("diagnosis_decision", "the diagnosis service's whole pure work per snapshot on the same "
         f"states (ward {WARD}, care plans): assess + with_sepsis_scores + on_assessment "
         "(alert hygiene, alerts, bed requests, pathways), alert state kept per patient across "
         "passes; no Kafka, no metrics", decider),
    ):  # fmt: skip
        done, cpu_started = 0, time.process_time()
        deadline = time.perf_counter() + options.duration_seconds
        while time.perf_counter() < deadline:
            for state in population:
                score(state)
            done += len(population)
        per_second = done / (time.process_time() - cpu_started)
        results.append({
            "name": name,
            "description": description,
            "assessments": done,
            "per_cpu_second": round(per_second),
            "microseconds_each": round(1e6 / per_second, 1),
            "target": {"text": f">= {TARGET_PER_SECOND:,} assessments/s on one core",
                       "met": per_second >= TARGET_PER_SECOND},
        })  # fmt: skip
    decided = results[-1]["assessments"]
    return results, {
        "patients scored in turn": len(population),
        "diagnosis_decision snapshots that issued an assessment": f"{decider.issued:,} of "
        f"{decided:,} (the first pass issues each patient's first; after it the states repeat, so "
        "most snapshots say nothing new, as most do in the service)",
        "diagnosis_decision alert states held": len(decider.states),
    }


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "assessments", "per CPU-second", "µs each", "target"]]
    for s in scenarios:
        verdict = f"{s['target']['text']}: {'met' if s['target']['met'] else 'MISSED'}"
        rows.append([s["name"], f"{s['assessments']:,}", f"{s['per_cpu_second']:,}",
                     f"{s['microseconds_each']}", verdict])  # fmt: skip
    return rows
