"""Scheduler HTTP API for bed managers and boards: live beds, open requests, a change stream,
and bed managers' writes (bed requests, cancellations, blocks and unblocks).

Reads come from Redis directly; every JSON answer carries `as_of` (Redis's clock, read with the
data) and `source`. Writes never touch Redis: each publishes an event to scheduling.requests
(`commands.py`) and answers 202 once the broker acknowledged it; the scheduler's stage applies it.
A ward's layout is set the same way, on hospital.layout (`layout_api.py`); the API reads the
current layout through a getter, so it sees each change as the scheduler applies it.
Every /v1 endpoint needs `Authorization: Bearer <key>` (401 without a known key): reads want a
key with `read = true`, writes one with `write = true` (403 otherwise); development keys may do
both. /healthz is open. Errors name fields, never values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from schemas.base import Identifier
from schemas.beds import BedRequestCancelled, BedRequested, BedStatusReported, BlockedReason
from schemas.layout import LayoutError
from schemas.vocabulary import Band, BedStatus, Capability, Sex
from services.common.auth import KeyEntry, KeyRing
from services.common.hospital import HospitalLayout, Ward
from services.scheduler import views
from services.scheduler.commands import RETRY_AFTER_SECONDS, BrokerUnavailable, Publisher
from services.scheduler.layout_api import layout_writes
from services.scheduler.policy import Reservations, configured_policy
from services.scheduler.store import RedisBedStore

log = logging.getLogger(__name__)

STREAM_POLL_SECONDS = 1.0
"""How long an idle stream waits for a change before it checks whether the server is stopping."""
UNSUBSCRIBE_TIMEOUT_SECONDS = 2.0
BEARER = HTTPBearer(auto_error=False, description="The API key of a reader or a writer.")

Pseudonym = Annotated[str, Field(pattern=r"^p[0-9a-f]{32}$")]
"""A patient as the API and the topics show them: ingest's pseudonym (never an MRN)."""


class BedRequestBody(BaseModel):
    """POST /v1/requests: a bed for a patient in a ward, or an HDU/ICU bed (give one of the two)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: Pseudonym
    ward: Identifier | None = None
    level_of_care: Literal["hdu", "icu"] | None = None
    from_ward: Identifier | None = Field(
        default=None,
        description="With level_of_care: the ward the patient is in; default the ward where the"
        " live state has them in a bed.",
    )
    band: Band | None = Field(default=None, description="NEWS2 band: the request's acuity.")
    reason: str | None = Field(default=None, max_length=200)
    needs: list[Capability] = Field(
        default=[],
        max_length=4,
        description="With ward: capabilities the bed must have (isolation, telemetry,"
        " ventilator, bariatric).",
    )
    sex: Sex | None = Field(
        default=None,
        description="With ward: the patient's sex, for bays with a sex policy (other, unknown or"
        " none: mixed bays only).",
    )


class BlockBody(BaseModel):
    """POST /v1/beds/{ward}/{bed}/block."""

    model_config = ConfigDict(extra="forbid")

    blocked_reason: BlockedReason
    reason: str | None = Field(default=None, max_length=200)


def _refusal(status: int, reason: str, errors: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"reason": reason, "errors": errors}, status_code=status)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """`body.band` -> `band`, `path.request_id` -> `request_id`, `body.bays.0.sex` ->
    `bays[0].sex`: the field a client sent."""
    parts = list(loc)
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    named = ""
    for part in parts:
        named += f"[{part}]" if isinstance(part, int) else f".{part}" if named else str(part)
    return named or "body"


def _problem(error: Any) -> dict[str, str]:
    """A validation error as {field, problem}; a layout rule's error names its own field."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, LayoutError):
        prefix = _field(error["loc"])
        field = cause.field if prefix == "body" else f"{prefix}.{cause.field}"
        return {"field": field, "problem": cause.problem}
    return {"field": _field(error["loc"]), "problem": error["msg"]}


class Refused(Exception):
    """A write refused before anything was published: 422 naming the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def create_api(
    store: RedisBedStore,
    layout: HospitalLayout | Callable[[], HospitalLayout],
    clients: KeyRing[KeyEntry],
    *,
    closing: asyncio.Event | None = None,
    publisher: Publisher | None = None,
    holds: Reservations | None = None,
) -> FastAPI:
    """The app; setting `closing` ends every open stream (within STREAM_POLL_SECONDS), so the
    server can stop while boards are connected. `layout` is the hospital layout or a getter of
    the current one (the scheduler's, which layout changes replace). `clients` are the keys
    allowed in at all (each route checks `read` or `write`); without a `publisher` the write
    endpoints are not served. `holds`: the scheduling policy's hold times, for the expiry of
    reserved requests in `GET /v1/requests` (default: the configured policy's)."""
    api = FastAPI(title="wardflow scheduler", version="1")
    current = layout if callable(layout) else lambda: layout
    hold_times = holds if holds is not None else configured_policy().reservations
    stopping = closing if closing is not None else asyncio.Event()

    async def client(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> KeyEntry:
        holder = clients.by_key(credentials.credentials if credentials else "")
        if holder is None:
            raise HTTPException(
                401,
                detail="a valid 'Authorization: Bearer <api key>' is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return holder

    as_client = Depends(client)  # a default, not an annotation: `client` is a local function

    async def reader(holder: KeyEntry = as_client) -> KeyEntry:
        if not holder.read:
            raise HTTPException(403, detail="this key may not read (its entry lacks read = true)")
        return holder

    async def writer(holder: KeyEntry = as_client) -> KeyEntry:
        if not holder.write:
            raise HTTPException(403, detail="this key may not write (its entry lacks write = true)")
        return holder

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # Name the field and the problem, never the value sent (it may be a patient id).
        return _refusal(422, "invalid_request", [_problem(e) for e in error.errors()])

    @api.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        return _refusal(422, "invalid_request", [{"field": error.field, "problem": error.problem}])

    @api.exception_handler(BrokerUnavailable)
    async def broker_down(_: Request, error: BrokerUnavailable) -> JSONResponse:
        return JSONResponse(
            {
                "reason": "broker_unavailable",
                "detail": "the broker did not confirm: nothing was requested; retry later",
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(reader)])

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        await store.redis.ping()
        return {"status": "ok"}

    @v1.get("/wards")
    async def wards() -> dict[str, Any]:
        """Beds by status, total beds and patients waiting, per ward."""
        return await views.wards(store.redis, store.keys, current())

    @v1.get("/wards/{ward_id}/beds")
    async def beds(ward_id: str) -> dict[str, Any]:
        """Every bed of one ward and its status."""
        ward = current().ward(ward_id)
        if ward is None:
            raise HTTPException(404, detail=f"ward {ward_id!r} is not in the hospital layout")
        return await views.ward_beds(store.redis, store.keys, ward)

    @v1.get("/requests")
    async def requests() -> dict[str, Any]:
        """Every open bed request, oldest first: ward requests and critical-care requests, each
        waiting or holding a reserved bed (with when it expires)."""
        return await views.open_requests(store.redis, store.keys, current(), hold_times)

    @v1.get("/availability/stream", response_class=EventSourceResponse)
    async def availability_stream() -> AsyncIterator[ServerSentEvent]:
        """Server-sent events: a `snapshot` (as GET /v1/wards), then a `change` per applied
        change (the scripts' published result), and a `: ping` comment after 15 s of quiet."""
        pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
        try:
            # Subscribe before the snapshot: a change in between shows in both, none is missed.
            await pubsub.subscribe(store.channel)
            yield ServerSentEvent(
                event="snapshot", data=await views.wards(store.redis, store.keys, current())
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
    if publisher is not None:
        api.include_router(_writes(store, current, publisher, writer))
        api.include_router(layout_writes(store, current, publisher, writer))
    return api


def _writes(
    store: RedisBedStore,
    current: Callable[[], HospitalLayout],
    publisher: Publisher,
    writer: Any,
) -> APIRouter:
    """The write endpoints: each publishes one event to scheduling.requests, answers 202 with its
    id once the broker acknowledged it, and leaves Redis to the scheduler's stage."""
    v1 = APIRouter(prefix="/v1")
    as_writer = Depends(writer)  # a default, not an annotation: these are local functions

    def envelope(holder: KeyEntry) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"event_id": uuid4(), "occurred_at": now, "recorded_at": now, "source": holder.name}

    def known_bed(ward_id: str, bed: str) -> Ward:
        ward = current().ward(ward_id)
        if ward is None:
            raise HTTPException(404, detail=f"ward {ward_id!r} is not in the hospital layout")
        if bed not in ward.beds:
            raise HTTPException(404, detail=f"bed {bed!r} is not in ward {ward_id!r}")
        return ward

    @v1.post("/requests", status_code=202)
    async def request_bed(body: BedRequestBody, holder: KeyEntry = as_writer) -> dict[str, str]:
        """Ask for a bed: with `ward`, a bed of that ward (allocated at once, the bed becomes
        occupied for the patient, or the patient waits for the ward); with `level_of_care`, an
        HDU/ICU bed reserved or queued by acuity. Answers the request id."""
        if (body.ward is None) == (body.level_of_care is None):
            raise Refused("ward", "give exactly one of ward and level_of_care")
        from_ward = body.from_ward
        layout = current()
        if body.ward is not None:
            if layout.ward(body.ward) is None:
                raise HTTPException(404, detail=f"ward {body.ward!r} is not in the hospital layout")
            if from_ward is not None:
                raise Refused("from_ward", "only with level_of_care")
        elif from_ward is None:
            from_ward = await views.patient_ward(store.redis, store.keys, layout, body.patient_id)
            if from_ward is None:
                raise Refused("from_ward", "the patient has no bed: name the ward they are in")
        elif layout.ward(from_ward) is None:
            raise Refused("from_ward", "not a ward of the hospital layout")
        event = BedRequested(
            **envelope(holder),
            patient_id=body.patient_id,
            ward=body.ward,
            level_of_care=body.level_of_care,
            from_ward=from_ward if body.level_of_care else None,
            band=body.band,
            reason=body.reason,
            needs=body.needs,
            sex=body.sex,
            requested_by=holder.name,
        )
        await publisher.publish(event)
        return {"request_id": str(event.event_id)}

    @v1.delete("/requests/{request_id}", status_code=202)
    async def cancel_request(request_id: UUID, holder: KeyEntry = as_writer) -> dict[str, str]:
        """Cancel a request: a critical-care one is withdrawn (a reserved bed is freed), a
        patient waiting for a ward leaves its queue. An unknown or settled request (one that
        already got its bed) changes nothing."""
        event = BedRequestCancelled(
            **envelope(holder), request_id=request_id, cancelled_by=holder.name
        )
        await publisher.publish(event)
        return {"request_id": str(request_id), "event_id": str(event.event_id)}

    @v1.post("/beds/{ward_id}/{bed}/block", status_code=202)
    async def block(
        ward_id: str, bed: str, body: BlockBody, holder: KeyEntry = as_writer
    ) -> dict[str, str]:
        """Block a bed with a reason code (a bed in use cannot be blocked: the scheduler refuses
        it with a BedTransitionRefused)."""
        known_bed(ward_id, bed)
        code, text = body.blocked_reason, body.reason
        return await report(holder, ward_id, bed, BedStatus.BLOCKED, code, text)

    @v1.post("/beds/{ward_id}/{bed}/unblock", status_code=202)
    async def unblock(ward_id: str, bed: str, holder: KeyEntry = as_writer) -> dict[str, str]:
        """Unblock a bed: it goes to cleaning (a blocked bed comes back only through cleaning)."""
        known_bed(ward_id, bed)
        return await report(holder, ward_id, bed, BedStatus.CLEANING, None, None)

    async def report(
        holder: KeyEntry,
        ward_id: str,
        bed: str,
        status: BedStatus,
        code: BlockedReason | None,
        reason: str | None,
    ) -> dict[str, str]:
        event = BedStatusReported(
            **envelope(holder),
            ward=ward_id,
            bed=bed,
            status=status,
            blocked_reason=code,
            reason=reason,
        )
        await publisher.publish(event)
        return {"event_id": str(event.event_id), "ward": ward_id, "bed": bed, "status": status}

    return v1
