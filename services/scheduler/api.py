"""Scheduler HTTP API for bed managers and boards: live beds, open requests, a change stream.

Read from Redis directly. Every /v1 endpoint needs `Authorization: Bearer <key>` of a reader (a
sources-file entry with `read = true`, or a development key); /healthz is open. Every JSON answer
carries `as_of` (Redis's clock, read with the data) and `source`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.exceptions import RedisError

from services.common.auth import KeyEntry, KeyRing
from services.common.hospital import HospitalLayout
from services.scheduler import views
from services.scheduler.store import RedisBedStore

log = logging.getLogger(__name__)

STREAM_POLL_SECONDS = 1.0
"""How long an idle stream waits for a change before it checks whether the server is stopping."""
UNSUBSCRIBE_TIMEOUT_SECONDS = 2.0
BEARER = HTTPBearer(auto_error=False, description="The API key of a reader.")


def create_api(
    store: RedisBedStore,
    layout: HospitalLayout,
    readers: KeyRing[KeyEntry],
    *,
    closing: asyncio.Event | None = None,
) -> FastAPI:
    """The app; setting `closing` ends every open stream (within STREAM_POLL_SECONDS), so the
    server can stop while boards are connected."""
    api = FastAPI(title="wardflow scheduler", version="1")
    stopping = closing if closing is not None else asyncio.Event()

    async def reader(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> KeyEntry:
        holder = readers.by_key(credentials.credentials if credentials else "")
        if holder is None:
            raise HTTPException(
                401,
                detail="a valid 'Authorization: Bearer <api key>' is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return holder

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(reader)])

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        await store.redis.ping()
        return {"status": "ok"}

    @v1.get("/wards")
    async def wards() -> dict[str, Any]:
        """Beds by status, total beds and patients waiting, per ward."""
        return await views.wards(store.redis, store.prefix, layout)

    @v1.get("/wards/{ward_id}/beds")
    async def beds(ward_id: str) -> dict[str, Any]:
        """Every bed of one ward and its status."""
        ward = layout.ward(ward_id)
        if ward is None:
            raise HTTPException(404, detail=f"ward {ward_id!r} is not in the hospital layout")
        return await views.ward_beds(store.redis, store.prefix, ward)

    @v1.get("/requests")
    async def requests() -> dict[str, Any]:
        """Every open bed request, oldest first: patients waiting for a ward and critical-care
        requests (queued or holding a reserved bed)."""
        return await views.open_requests(store.redis, store.prefix, layout)

    @v1.get("/availability/stream", response_class=EventSourceResponse)
    async def availability_stream() -> AsyncIterator[ServerSentEvent]:
        """Server-sent events: a `snapshot` (as GET /v1/wards), then a `change` per applied
        change (the scripts' published result), and a `: ping` comment after 15 s of quiet."""
        pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
        try:
            # Subscribe before the snapshot: a change in between shows in both, none is missed.
            await pubsub.subscribe(store.channel)
            yield ServerSentEvent(
                event="snapshot", data=await views.wards(store.redis, store.prefix, layout)
            )
            while not stopping.is_set():
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=STREAM_POLL_SECONDS
                )
                if message is not None and message.get("type") == "message":
                    yield ServerSentEvent(event="change", raw_data=message["data"])
        except RedisError as error:  # the client reconnects and gets a fresh snapshot
            log.warning("availability stream ended error=%s", type(error).__name__)
        finally:
            # Also on client disconnect, when the surrounding scope is being cancelled.
            with anyio.move_on_after(UNSUBSCRIBE_TIMEOUT_SECONDS, shield=True):
                with contextlib.suppress(RedisError):
                    await pubsub.unsubscribe(store.channel)
                await pubsub.aclose()

    api.include_router(v1)
    return api
