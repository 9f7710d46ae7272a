"""The fusion process: a faust worker (it handles SIGINT/SIGTERM itself)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from services.common.kafka import ensure_topics
from services.common.logs import configure_logging
from services.common.metrics import serve_metrics
from services.fusion.app import STAGE, build
from services.fusion.config import FusionSettings


def main(settings: FusionSettings) -> None:
    configure_logging(STAGE, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    app = build(settings)
    asyncio.run(create_changelog_topics(app, settings))
    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
    )
    worker.execute_from_commandline()


async def create_changelog_topics(app: faust.App, settings: FusionSettings) -> None:
    """Create each table's changelog (compacted) with as many partitions as events.clean.

    Declared here rather than left to the broker: a broker that auto-creates topics would give
    the changelog its default partition count, and faust refuses a changelog that differs from
    its source topic.
    """
    changelogs = {table.changelog_topic.get_topic_name(): True for table in app.tables.values()}
    await ensure_topics(settings, changelogs, settings.partitions)
