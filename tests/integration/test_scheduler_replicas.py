"""Two scheduler replicas as real processes in one consumer group, under a storm of admissions,
critical-care requests, discharges and housekeeping: no bed is ever given to two patients, no
patient holds two beds, and every request ends placed or waiting. Real embedded broker and Redis.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from schemas.beds import BedAssigned, BedReserved
from schemas.topics import BEDS_EVENTS, EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_DECISIONS
from schemas.vocabulary import BedStatus
from services.common.embedded import free_port
from services.common.hospital import layout_from_dict
from services.scheduler.config import SchedulerSettings
from services.scheduler.keys import BedKeys
from tests.integration.test_scheduler_stage import admitted, bed_requested, discharged
from tests.support import ServiceProcess, collect, eventually, publish

LAYOUT = """
version = "replicas"
[[wards]]
id = "W1"
level_of_care = "general"
beds = 12
[[wards]]
id = "W2"
level_of_care = "general"
beds = 12
[[wards]]
id = "ICU"
level_of_care = "icu"
beds = 4
"""
PATIENTS = 60  # for 24 general beds: most wait
CRITICAL = 10  # for 4 ICU beds


def replica_env(settings: SchedulerSettings, layout: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_CONSUMER_GROUP": settings.consumer_group,
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "REDIS_URL": settings.redis_url,
        "WARDFLOW_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "WARDFLOW_HOSPITAL_LAYOUT": str(layout),
        "WARDFLOW_HTTP_PORT": str(free_port()),
        "WARDFLOW_API_KEYS": json.dumps({"test": "replica-test-key-0123456789"}),
    }


async def test_two_replicas_never_double_book_under_a_storm(
    settings_factory: Any, redis_server: Any, unique: str, producer: Any, kafka: Any, tmp_path: Path
) -> None:
    layout = tmp_path / "layout.toml"
    layout.write_text(LAYOUT)
    settings = await settings_factory(
        SchedulerSettings,
        redis_url=redis_server.url,
        redis_key_prefix=f"t{unique}",
        consumer_group=f"g{unique}-scheduler",
    )
    patients = [f"P{n:03d}" for n in range(PATIENTS)]
    admissions = [admitted(p, ward="W1" if n % 2 else "W2") for n, p in enumerate(patients)]
    requests = [bed_requested(f"C{n:02d}", "icu") for n in range(CRITICAL)]
    async with (
        ServiceProcess("scheduler", replica_env(settings, layout), tmp_path / "a.log", free_port()),
        ServiceProcess("scheduler", replica_env(settings, layout), tmp_path / "b.log", free_port()),
    ):
        # The storm: every admission and request at once, on every partition.
        await publish(producer, settings, EVENTS_CLEAN, *admissions)
        await publish(producer, settings, PATIENTS_ASSESSMENTS, *requests)
        decisions = await collect(
            kafka.url,
            settings,
            SCHEDULING_DECISIONS,
            lambda events: (
                len({e.patient_id for e in events if hasattr(e, "patient_id")})
                >= PATIENTS + CRITICAL
            ),
            timeout_seconds=60,
        )
        # Half of the placed patients leave: their beds go to waiting patients only after
        # housekeeping, so nothing is given while dirty.
        placed = [e for e in decisions if isinstance(e, BedAssigned)]
        leaving = placed[: len(placed) // 2]
        await publish(
            producer, settings, EVENTS_CLEAN, *(discharged(e.patient_id, e.ward) for e in leaving)
        )
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        keys = BedKeys.of(settings.redis_key_prefix, layout_from_dict(tomllib.loads(LAYOUT)))
        try:

            async def all_dirty() -> bool:
                statuses = {
                    ward: await redis.hgetall(keys.ward(ward, "status")) for ward in ("W1", "W2")
                }
                return sum(s == "dirty" for w in statuses.values() for s in w.values()) == len(
                    leaving
                )

            await eventually(all_dirty, timeout_seconds=30)
            occupants = {
                ward: await redis.hgetall(keys.ward(ward, "occupant"))
                for ward in ("W1", "W2", "ICU")
            }
            statuses = {
                ward: await redis.hgetall(keys.ward(ward, "status")) for ward in ("W1", "W2", "ICU")
            }
        finally:
            await redis.aclose()
        changes = await collect(
            kafka.url,
            settings,
            BEDS_EVENTS,
            lambda events: sum(e.status == BedStatus.DIRTY for e in events) >= len(leaving),
        )
    dirtied = [(c.ward, c.bed) for c in changes if c.status == BedStatus.DIRTY]
    assert sorted(dirtied) == sorted((e.ward, e.bed) for e in leaving)

    # Every general bed was given once and every ICU bed reserved once (none was free again:
    # the discharged beds are dirty), and no patient was placed twice.
    assigned = [(e.ward, e.bed) for e in decisions if isinstance(e, BedAssigned)]
    reserved = [(e.ward, e.bed) for e in decisions if isinstance(e, BedReserved)]
    assert len(assigned) == len(set(assigned)) == 24, "each general bed given exactly once"
    assert len(reserved) == len(set(reserved)) == 4, "each ICU bed reserved exactly once"
    seen_patients = [e.patient_id for e in decisions if isinstance(e, BedAssigned | BedReserved)]
    assert len(seen_patients) == len(set(seen_patients)), "no patient placed twice"
    # Redis agrees: occupied beds have exactly one occupant each, nobody is in two beds.
    for ward in ("W1", "W2"):
        occupied = [bed for bed, status in statuses[ward].items() if status == "occupied"]
        assert sorted(occupied) == sorted(occupants[ward])
    everyone = [p for ward in occupants.values() for p in ward.values()]
    assert len(everyone) == len(set(everyone))
    assert [s for s in statuses["ICU"].values()] == ["reserved"] * 4
