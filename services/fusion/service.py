"""The fusion process: the changelog topic, then the stage loop until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from services.common.kafka import ensure_topics
from services.common.runtime import run_stage
from services.fusion.app import build, changelog_topic
from services.fusion.config import FusionSettings


async def run(settings: FusionSettings, stop: asyncio.Event) -> None:
    """Create the changelog (compacted, as many partitions as events.clean) if it is missing:
    declared here rather than left to a broker that would auto-create it with its default
    partition count. Then run the stage."""
    await ensure_topics(settings, {changelog_topic(settings): True}, settings.partitions)
    await run_stage(build(settings), stop)
