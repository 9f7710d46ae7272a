"""Scheduler HTTP API: live beds by ward, read from Redis. Every answer says how fresh it is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException

from services.common.hospital import HospitalLayout
from services.scheduler.domain import count_by_status
from services.scheduler.store import RedisBedStore


def create_api(store: RedisBedStore, layout: HospitalLayout) -> FastAPI:
    api = FastAPI(title="wardflow scheduler", version="1")

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        await store.redis.ping()
        return {"status": "ok"}

    @api.get("/v1/wards")
    async def wards() -> dict[str, Any]:
        result = []
        for ward in layout.wards:
            statuses = await store.statuses(ward.id)
            result.append(
                {
                    "ward": ward.id,
                    "name": ward.name,
                    "level_of_care": ward.level_of_care.value,
                    "total_beds": len(statuses),
                    "beds_by_status": count_by_status(list(statuses.values())),
                    "waiting": await store.waiting_count(ward.id),
                }
            )
        return {"as_of": datetime.now(UTC).isoformat(), "layout": layout.version, "wards": result}

    @api.get("/v1/wards/{ward_id}/beds")
    async def beds(ward_id: str) -> dict[str, Any]:
        ward = layout.ward(ward_id)
        if ward is None:
            raise HTTPException(404, detail=f"ward {ward_id!r} is not in the hospital layout")
        statuses = await store.statuses(ward.id)
        return {
            "as_of": datetime.now(UTC).isoformat(),
            "ward": ward.id,
            "beds": [{"bed": bed, "status": statuses[bed].value} for bed in ward.beds],
        }

    return api
