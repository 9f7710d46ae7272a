"""PUT /v1/wards/{ward}/layout: a bed manager (or estates) sets one ward's layout while the
scheduler runs.

The body is the ward's whole definition, as a `[[wards]]` entry of the layout file, plus an
optional reason code. It is checked against the layout rules (`422` naming the field) and against
the live state: a change that would take away a bed in use, or change the level of care of a ward
with a bed occupied or reserved, is refused with `409` naming the beds, and nothing is published.
Otherwise a `WardLayoutSet` goes to hospital.layout and the answer is `202` once the broker has
acknowledged it (`503` with Retry-After if it did not); every scheduler replica then applies it
(`follower.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import ConfigDict

from schemas.layout import LayoutChangeReason, WardDefinition, WardLayoutSet
from schemas.topics import HOSPITAL_LAYOUT
from services.common.auth import KeyEntry
from services.common.hospital import HospitalLayout
from services.scheduler.commands import Publisher
from services.scheduler.layout import leaving, refusal
from services.scheduler.store import RedisBedStore


class WardLayoutBody(WardDefinition):
    """PUT /v1/wards/{ward}/layout: the ward's whole new definition; `reason` is a code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: LayoutChangeReason | None = None


def layout_writes(
    store: RedisBedStore,
    current: Callable[[], HospitalLayout],
    publisher: Publisher,
    writer: Any,
) -> APIRouter:
    v1 = APIRouter(prefix="/v1")
    as_writer = Depends(writer)  # a default, not an annotation: `writer` is a local function

    @v1.put("/wards/{ward_id}/layout", status_code=202, response_model=None)
    async def set_layout(
        ward_id: str, body: WardLayoutBody, holder: KeyEntry = as_writer
    ) -> dict[str, Any] | JSONResponse:
        """Set a ward's layout (or add a ward): its beds or bays, capabilities, level of care.
        Beds it no longer lists are removed once the change is applied, if free. Answers the
        event id and the beds added and removed."""
        if body.id != ward_id:
            problem = "must be the ward named in the path"
            errors = [{"field": "id", "problem": problem}]
            return JSONResponse({"reason": "invalid_request", "errors": errors}, status_code=422)
        definition = WardDefinition.model_validate(body.entry())
        ward = definition.as_ward()
        old = current().ward(ward_id)
        statuses = await store.statuses(ward_id)
        in_the_way = refusal(old, ward, statuses)
        if in_the_way is not None:
            return JSONResponse(
                {
                    "reason": in_the_way.reason,
                    "detail": in_the_way.detail,
                    "beds": list(in_the_way.beds),
                },
                status_code=409,
            )
        now = datetime.now(UTC)
        event = WardLayoutSet(
            event_id=uuid4(),
            occurred_at=now,
            recorded_at=now,
            source=holder.name,
            ward=definition,
            changed_by=holder.name,
            reason=body.reason,
        )
        await publisher.publish(event, HOSPITAL_LAYOUT)
        before = set(old.beds if old else ()) | set(statuses)
        return {
            "event_id": str(event.event_id),
            "ward": ward_id,
            "beds": list(ward.beds),
            "added": [bed for bed in ward.beds if bed not in before],
            "removed": list(leaving(ward, statuses, old)),
        }

    return v1
