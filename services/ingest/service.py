"""The ingest process: an HTTP server in front of a Kafka producer."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from schemas.topics import EVENTS_RAW
from services.common.http import http_server
from services.common.kafka import make_producer, topic
from services.common.runtime import until_stopped
from services.common.stage import STAGE_READY
from services.ingest.api import STAGE, create_api
from services.ingest.config import IngestSettings

log = logging.getLogger(__name__)


async def run(settings: IngestSettings, stop: asyncio.Event) -> None:
    if not settings.api_keys:
        log.warning("no API keys configured: every request will be refused with 401")
    producer = make_producer(settings)
    while True:  # wait for the broker rather than crash-loop
        try:
            await producer.start()
            break
        except KafkaError as error:
            log.warning("broker not reachable yet error=%s", type(error).__name__)
            await producer.stop()
            producer = make_producer(settings)
            if stop.is_set():
                return
            await asyncio.sleep(1.0)
    try:
        api = create_api(settings, producer, topic(settings, EVENTS_RAW))
        server = http_server(api, settings.http_host, settings.http_port)
        task = asyncio.create_task(server.serve())
        STAGE_READY.labels(STAGE).set(1)
        try:
            await until_stopped(stop, task)
        finally:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
    finally:
        STAGE_READY.labels(STAGE).set(0)
        await producer.stop()
