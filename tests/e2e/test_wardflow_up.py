"""The whole stack as `wardflow up` starts it: separate processes, driven like a hospital would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from redis.asyncio import Redis

from schemas.assessments import AssessmentIssued
from schemas.beds import BedAssigned
from schemas.topics import PATIENTS_ASSESSMENTS, SCHEDULING_DECISIONS
from schemas.vocabulary import Band
from services.common.settings import ServiceSettings
from services.ingest.guards import pseudonymise
from services.launcher.processes import wardflow_command
from tests.integration.ingest_fixtures import MllpClient, adt, fhir_observation, segments
from tests.support import collect, eventually

pytestmark = pytest.mark.e2e
SERVICES = ("ingest", "cleaning", "fusion", "diagnosis", "scheduler")


def start_up(var_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    with (var_dir.parent / f"{var_dir.name}.out").open("wb") as output:
        return subprocess.Popen(
            [*wardflow_command(), "up", "--var-dir", str(var_dir), *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def wait_for_stack(process: subprocess.Popen[bytes], var_dir: Path) -> dict[str, Any]:
    stack_file = var_dir / "stack.json"
    deadline = time.monotonic() + 150
    while not stack_file.exists():
        assert process.poll() is None, (var_dir.parent / f"{var_dir.name}.out").read_text()
        assert time.monotonic() < deadline, "wardflow up did not become ready"
        await asyncio.sleep(0.5)
    return json.loads(stack_file.read_text())


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def assert_all_gone(processes: list[psutil.Process]) -> None:
    survivors = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"left behind: {[p.cmdline()[:3] for p in survivors]}"


def vitals(patient: str, **extra: Any) -> dict[str, Any]:
    measurements = [
        ("respiratory_rate", 28, "/min"),
        ("spo2", 90, "%"),
        ("systolic_bp", 88, "mm[Hg]"),
        ("heart_rate", 135, "/min"),
        ("temperature", 103.1, "[degF]"),
    ]
    return {
        "kind": "VitalSignsObserved",
        "occurred_at": datetime.now(UTC).isoformat(),
        "patient_id": patient,
        "measurements": [{"parameter": p, "value": v, "unit": u} for p, v, u in measurements],
        "supplemental_oxygen": True,
        "consciousness": "V",
        **extra,
    }


async def test_events_through_ingest_come_out_as_assessments_and_a_bed(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    process = start_up(var_dir, "--no-simulate")
    try:
        stack = await wait_for_stack(process, var_dir)
        children = descendants(process.pid)
        assert len(children) >= 7, "broker, Redis and five services as separate processes"
        headers = {"Authorization": f"Bearer {stack['credential']['api_key']}"}
        # The MRN never travels past ingest: downstream the patient is its keyed pseudonym.
        patient = pseudonymise("E2E-1", (var_dir / "pseudonym.key").read_text().strip().encode())
        admission = {
            "kind": "PatientAdmitted",
            "occurred_at": datetime.now(UTC).isoformat(),
            "patient_id": "E2E-1",
            "ward": "WARD-A",
        }
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{stack['ingest_url']}/v1/events",
                json={"events": [admission, vitals("E2E-1")]},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            settings = ServiceSettings(kafka_bootstrap_servers=stack["kafka_bootstrap_servers"])

            assessments = await collect(
                settings.kafka_bootstrap_servers,
                settings,
                PATIENTS_ASSESSMENTS,
                lambda events: any(e.patient_id == patient and e.complete for e in events),
                timeout_seconds=60,
            )
            assessment: AssessmentIssued = next(a for a in assessments if a.complete)
            assert assessment.band is Band.HIGH
            assert assessment.aggregate == 19  # 3+3+2+3+3+3+2, with 103.1 F = 39.5 C scoring 2

            decisions = await collect(
                settings.kafka_bootstrap_servers,
                settings,
                SCHEDULING_DECISIONS,
                lambda events: any(isinstance(e, BedAssigned) for e in events),
                timeout_seconds=60,
            )
            assigned = next(e for e in decisions if isinstance(e, BedAssigned))
            assert (assigned.patient_id, assigned.ward) == (patient, "WARD-A")

            redis = Redis.from_url(stack["redis_url"], decode_responses=True)
            try:
                status = await redis.hget("wardflow:{ward:WARD-A}:status", assigned.bed)
                occupant = await redis.hget("wardflow:{ward:WARD-A}:occupant", assigned.bed)
            finally:
                await redis.aclose()
            assert (status, occupant) == ("occupied", patient), "Redis holds the pseudonym only"

            scheduler_url = stack["scheduler_url"]
            assert (await client.get(f"{scheduler_url}/v1/wards")).status_code == 401
            answer = (await client.get(f"{scheduler_url}/v1/wards", headers=headers)).json()
            assert answer["source"] == "redis-live-state"
            wards = answer["wards"]
            ward_a = next(w for w in wards if w["ward"] == "WARD-A")
            assert ward_a["beds_by_status"]["occupied"] == 1

            async def metrics_show_the_events() -> bool:
                diagnosis = (await client.get(stack["metrics_urls"]["diagnosis"])).text
                scheduler = (await client.get(stack["metrics_urls"]["scheduler"])).text
                cleaning = (await client.get(stack["metrics_urls"]["cleaning"])).text
                return (
                    'wardflow_assessments_total{band="high"} 1.0' in diagnosis
                    and 'wardflow_bed_allocations_total{ward="WARD-A"} 1.0' in scheduler
                    and 'wardflow_events_in_total{stage="cleaning",topic="events.raw"} 2.0'
                    in cleaning
                )

            await eventually(metrics_show_the_events)

            # A newcomer's HL7 sender and FHIR client, pointed at what stack.json says.
            key = (var_dir / "pseudonym.key").read_text().strip().encode()
            mllp = await MllpClient.connect(stack["mllp"]["port"])
            try:
                admit = adt("A01", "E2E-HL7-1", "E2E-2", "WARD-B")
                first, resent = await mllp.send(admit), await mllp.send(admit)
                malformed = await mllp.send("PID|1||X\rMSH|^~\\&|A|B")
            finally:
                await mllp.close()
            assert segments(first)["MSA"][1] == "AA" and resent == first
            assert segments(malformed)["MSA"][1] == "AR" and "ERR" in segments(malformed)
            observation = fhir_observation("E2E-2", "8867-4", 88, "/min")
            created = await client.post(
                f"{stack['ingest_url']}/fhir/Observation", json=observation, headers=headers
            )
            assert created.status_code == 201, created.text
            decisions = await collect(
                settings.kafka_bootstrap_servers,
                settings,
                SCHEDULING_DECISIONS,
                lambda events: any(
                    isinstance(e, BedAssigned) and e.patient_id == pseudonymise("E2E-2", key)
                    for e in events
                ),
                timeout_seconds=60,
            )
            second = [e for e in decisions if isinstance(e, BedAssigned) and e.ward == "WARD-B"]
            assert len(second) == 1, "the resent HL7 message was absorbed"
    finally:
        children = descendants(process.pid) if process.poll() is None else []
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 90)
    assert code == 0
    assert_all_gone(children)
    summary = json.loads((var_dir / "summary.json").read_text())
    assert summary["allocations"] == 2  # WARD-A over JSON, WARD-B over MLLP
    assert summary["services"]["ingest"]["events_out"] == 4  # JSON 2, MLLP 1, FHIR 1


async def test_simulated_hospital_flows_through_every_service(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    process = start_up(var_dir, "--duration", "25")
    stack = await wait_for_stack(process, var_dir)
    children = descendants(process.pid)
    assert any("simulate" in " ".join(p.cmdline()) for p in children), "simulator process"
    code = await asyncio.to_thread(process.wait, 180)
    assert code == 0
    assert_all_gone(children)
    summary = json.loads((var_dir / "summary.json").read_text())
    for name in SERVICES:
        assert summary["services"][name]["events_out"] > 0, name
    assert summary["allocations"] >= 1
    assert sum(summary["assessments_by_band"].values()) > 0
    assert summary["end_to_end_latency_seconds"]["p99"] is not None
    assert stack["credential"]["api_key"]
