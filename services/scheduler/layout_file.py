"""`wardflow layout publish FILE`: a hospital applies its edited layout file without a restart.

Each ward of the file (or only those named with `--ward`) that differs from the current layout
(the scheduler's file with hospital.layout folded over it) is published as a `WardLayoutSet`;
the running schedulers apply it. The file is checked whole first (the layout rules, and the
event's: identifiers, no unknown fields), then the live state as the API does: if any ward would
lose a bed in use, or change its level of care with beds occupied or reserved, nothing is
published. Wards the file leaves out are not touched (a ward is never removed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from redis.asyncio import Redis

from schemas.codec import encode
from schemas.layout import LayoutChangeReason, LayoutError, WardDefinition, WardLayoutSet
from schemas.topics import HOSPITAL_LAYOUT
from services.common.hospital import layout_from_dict, load_layout, read_layout_file
from services.common.kafka import make_producer, topic
from services.common.reviewed import where
from services.scheduler.config import SchedulerSettings
from services.scheduler.follower import current_layout
from services.scheduler.layout import LayoutRefusal, refusal
from services.scheduler.store import RedisBedStore

SOURCE = "layout-file"
"""The `source` of the events this command publishes (`changed_by` is the role given)."""


@dataclass
class PublishReport:
    published: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: dict[str, LayoutRefusal] = field(default_factory=dict)


def definitions(data: dict[str, Any], only: list[str]) -> dict[str, WardDefinition]:
    """The file's wards (those in `only`, if given) as definitions, by id; LayoutError names the
    entry at fault."""
    layout_from_dict(data)  # the layout's own rules first: wards[i].field
    found: dict[str, WardDefinition] = {}
    for index, entry in enumerate(data["wards"]):
        try:
            definition = WardDefinition.model_validate(entry)
        except ValidationError as refused:
            first = refused.errors(include_url=False)[0]
            raise LayoutError(where((f"wards[{index}]", *first["loc"])), first["msg"]) from None
        found[definition.id] = definition
    unknown = [ward for ward in only if ward not in found]
    if unknown:
        raise LayoutError("--ward", f"not a ward of the file: {', '.join(unknown)}")
    return {ward: found[ward] for ward in only} if only else found


async def publish_file(
    settings: SchedulerSettings,
    path: str,
    only: list[str],
    role: str,
    reason: LayoutChangeReason | None = None,
    timeout_seconds: float = 120.0,
) -> PublishReport:
    chosen = definitions(read_layout_file(path), only)
    current = await current_layout(settings, load_layout(settings.hospital_layout), timeout_seconds)
    report = PublishReport()
    changed: list[WardDefinition] = []
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        store = RedisBedStore(redis, settings.redis_key_prefix)
        for ward_id, definition in chosen.items():
            ward, old = definition.as_ward(), current.ward(ward_id)
            if ward == old:
                report.unchanged.append(ward_id)
                continue
            in_the_way = refusal(old, ward, await store.statuses(ward_id))
            if in_the_way is not None:
                report.refused[ward_id] = in_the_way
            changed.append(definition)
    finally:
        await redis.aclose()
    if report.refused or not changed:
        return report
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    try:
        for definition in changed:
            now = datetime.now(UTC)
            event = WardLayoutSet(
                event_id=uuid4(),
                occurred_at=now,
                recorded_at=now,
                source=SOURCE,
                ward=definition,
                changed_by=role,
                reason=reason,
            )
            name = topic(settings, HOSPITAL_LAYOUT)
            await producer.send_and_wait(name, value=encode(event), key=event.kafka_key())
            report.published.append(definition.id)
    finally:
        await producer.stop()
    return report
