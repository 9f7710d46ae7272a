"""The fusion process: a faust worker (it handles SIGINT/SIGTERM itself)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=table.changelog_topic.get_topic_name(),
                num_partitions=settings.partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"},
            )
            for table in app.tables.values()
            if table.changelog_topic.get_topic_name() not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()
