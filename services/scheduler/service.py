"""The scheduler process: the Kafka stage, the HTTP API and the layout follower on one event loop.
The API's writes go to Kafka through their own producer (acks=all), never to Redis: the stage
applies them, and the follower applies layout changes (hospital.layout)."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.topics import EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS
from services.common.auth import KeyEntry, KeyRing, api_clients, plain_keys, read_sources_file
from services.common.hospital import HospitalLayout, load_layout
from services.common.http import http_server
from services.common.kafka import make_producer
from services.common.redis_client import make_redis
from services.common.runtime import until_stopped
from services.common.stage import StageRunner
from services.scheduler.api import create_api
from services.scheduler.app import HANDLED_KINDS, Scheduler
from services.scheduler.commands import Publisher
from services.scheduler.config import SchedulerSettings
from services.scheduler.follower import LayoutFeed, LayoutFollower, settle_layout
from services.scheduler.layout import folded
from services.scheduler.metrics import STAGE
from services.scheduler.policy import load_policy
from services.scheduler.rebuild import rebuild
from services.scheduler.store import RedisBedStore

log = logging.getLogger(__name__)


def load_clients(settings: SchedulerSettings) -> KeyRing[KeyEntry]:
    """Who may use the HTTP API: sources-file entries with `read = true` (reads) or
    `write = true` (writes), and dev keys (both)."""
    return api_clients(read_sources_file(settings.sources_file), plain_keys(settings.api_keys))


async def run(settings: SchedulerSettings, stop: asyncio.Event) -> None:
    base = load_layout(settings.hospital_layout)
    keys = load_clients(settings)  # configuration errors stop the process here
    if not keys.holders:
        log.warning("no readers or writers configured: every /v1 request will be refused with 401")
    redis = make_redis(settings.redis_url, cluster=settings.redis_cluster)
    producer = make_producer(settings, linger_ms=0)  # the API's writes; the stage has its own
    feed = LayoutFeed(settings)  # hospital.layout, read by this replica whole
    try:
        await producer.start()
        await feed.start()
        # The layout is the file with every change on hospital.layout folded over it.
        layout = folded(base, await feed.read_to_end())
        store = RedisBedStore(
            redis, settings.redis_key_prefix, settings.seen_event_ttl_seconds, layout=layout
        )
        # Kafka first: scopes Redis lost (a wipe, a new Redis) come back from beds.state before
        # the layout's missing beds are created (and beds that left it removed, if free) and
        # the first snapshots are published.
        restored = await rebuild(settings, store, missing_only=True, layout=layout)
        if restored.restored:
            log.warning("restored from beds.state scopes=%d", len(restored.restored))
        leaving = await settle_layout(store, layout)
        scheduler = Scheduler(store, layout, load_policy(settings.scheduler_policy_file))
        follower = LayoutFollower(scheduler, feed, producer, settings, leaving)
        runner = StageRunner(
            STAGE,
            settings,
            [EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS],
            scheduler,
            transient_errors=(RedisConnectionError, RedisTimeoutError),
            prepare=scheduler.initial_snapshots,
            before_commit=scheduler.touched_snapshots,
            ticker=scheduler.tick,
            tick_seconds=settings.reservation_sweep_seconds,
            kinds=HANDLED_KINDS,
        )
        closing = asyncio.Event()  # ends open event streams, so the server can stop
        publisher = Publisher(producer, settings, settings.broker_timeout_seconds)

        def current() -> HospitalLayout:  # the API sees each layout change
            return scheduler.layout

        api = create_api(
            store,
            current,
            keys,
            closing=closing,
            publisher=publisher,
            holds=scheduler.policy.reservations,
        )
        server = http_server(api, settings.http_host, settings.http_port)
        tasks = [
            asyncio.create_task(runner.run()),
            asyncio.create_task(server.serve()),
            asyncio.create_task(follower.run()),
        ]
        try:
            await until_stopped(stop, *tasks)
        finally:
            closing.set()
            runner.stop()
            follower.stop()
            server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await feed.stop()
        await producer.stop()
        await redis.aclose()
