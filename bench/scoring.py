"""Scoring speed in the pure domain code: NEWS2 assessments per second on one core.

No broker, no processes: the diagnosis rules on realistic patient states in a loop, so that
scoring can be compared with the stages around it (it must never be the bottleneck).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from uuid import uuid4

from bench.common import Options
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Consciousness
from services.diagnosis.domain import ScoringPolicy, assess
from services.diagnosis.scores import qsofa, sirs

TARGET_PER_SECOND = 20_000


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
                readings=readings,
                cause_recorded_at=now,
            )
        )
    return result


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    now = datetime.now(UTC)
    population, policy, ages = states(1_000, now), ScoringPolicy(), ScoringPolicy().max_age_seconds
    results = []
    for name, score in (
        ("news2_assessment", lambda s: assess(s, now, policy, event_id=s.event_id, source="b")),
        ("news2_qsofa_sirs", lambda s: (
            assess(s, now, policy, event_id=s.event_id, source="b"),
            qsofa(s.readings, now, max_age_seconds=ages),
            sirs(s.readings, now, max_age_seconds=ages),
        )),
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
            "description": "the pure diagnosis rules on 1,000 realistic patient states in turn",
            "assessments": done,
            "per_cpu_second": round(per_second),
            "microseconds_each": round(1e6 / per_second, 1),
            "target": {"text": f">= {TARGET_PER_SECOND:,} assessments/s on one core",
                       "met": per_second >= TARGET_PER_SECOND},
        })  # fmt: skip
    return results, {"patients scored in turn": len(population)}


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "assessments", "per CPU-second", "µs each", "target"]]
    for s in scenarios:
        verdict = f"{s['target']['text']}: {'met' if s['target']['met'] else 'MISSED'}"
        rows.append([s["name"], f"{s['assessments']:,}", f"{s['per_cpu_second']:,}",
                     f"{s['microseconds_each']}", verdict])  # fmt: skip
    return rows
