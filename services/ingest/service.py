"""The ingest process: HTTP (JSON, FHIR, HL7) and MLLP in front of one Kafka producer."""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError

from schemas.topics import EVENTS_RAW
from services.common.http import http_server
from services.common.kafka import make_producer, topic
from services.common.runtime import until_stopped
from services.common.stage import STAGE_READY
from services.ingest.api import create_api
from services.ingest.config import IngestSettings
from services.ingest.gateway import STAGE, Gateway, load_registry
from services.ingest.hl7_handler import Hl7Handler
from services.ingest.mllp import serve_mllp, tls_context

log = logging.getLogger(__name__)


async def run(settings: IngestSettings, stop: asyncio.Event) -> None:
    registry = load_registry(settings)  # configuration errors stop the process here
    if not registry.sources:
        log.warning("no sources configured: every request will be refused with 401")
    producer = make_producer(settings, linger_ms=0)
    while True:  # wait for the broker rather than crash-loop
        try:
            await producer.start()
            break
        except KafkaError as error:
            log.warning("broker not reachable yet error=%s", type(error).__name__)
            await producer.stop()
            producer = make_producer(settings, linger_ms=0)
            if stop.is_set():
                return
            await asyncio.sleep(1.0)
    try:
        gateway = Gateway(settings, producer, topic(settings, EVENTS_RAW), registry)
        hl7 = Hl7Handler(gateway, ZoneInfo(settings.hl7_timezone))
        server = http_server(
            create_api(settings, gateway, hl7), settings.http_host, settings.http_port
        )
        tasks = [asyncio.create_task(server.serve())]
        mllp = None
        if settings.mllp_port:
            mllp = await serve_mllp(
                hl7,
                settings.mllp_host,
                settings.mllp_port,
                max_frame_bytes=settings.max_body_bytes,
                tls=tls_context(settings.mllp_tls_cert, settings.mllp_tls_key),
            )
            log.info(
                "mllp listening port=%d tls=%s", settings.mllp_port, bool(settings.mllp_tls_cert)
            )
        STAGE_READY.labels(STAGE).set(1)
        try:
            await until_stopped(stop, *tasks)
        finally:
            server.should_exit = True
            if mllp is not None:
                mllp.close()
                await mllp.wait_closed()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        STAGE_READY.labels(STAGE).set(0)
        await producer.stop()
