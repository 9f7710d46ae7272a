"""Session-wide real components: the embedded Kafka-protocol broker and Redis, started once.

Each test isolates itself with a unique topic prefix, consumer group and Redis key prefix, so tests
share one broker and one Redis without seeing each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from services.common.embedded import EmbeddedServer, start_kafka, start_redis
from services.common.kafka import create_topics
from services.common.settings import ServiceSettings

T = TypeVar("T")


@pytest.fixture(scope="session")
def components_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("components")


@pytest.fixture(scope="session")
async def kafka(components_dir: Path) -> AsyncIterator[EmbeddedServer]:
    server = await start_kafka(components_dir / "logs")
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def redis_server(components_dir: Path) -> AsyncIterator[EmbeddedServer]:
    server = await start_redis(components_dir / "logs", components_dir / "redis")
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: EmbeddedServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, groups and key prefixes."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def settings_factory(kafka: EmbeddedServer, unique: str) -> Callable[..., Awaitable[Any]]:
    """Settings of any service class, pointed at the embedded broker with this test's topics."""
    created = False

    async def make(cls: type[T] = ServiceSettings, **overrides: Any) -> T:  # type: ignore[assignment]
        nonlocal created
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka.url,
            "kafka_fetch_max_wait_ms": 10,
            "kafka_session_timeout_ms": 6000,
            "topic_prefix": f"t{unique}.",
            "consumer_group": f"g{unique}",
            "metrics_port": 0,
            **overrides,
        }
        settings = cls(**values)
        if not created:
            await create_topics(settings, partitions=2)  # type: ignore[arg-type]
            created = True
        return settings

    return make


@pytest.fixture
async def producer(kafka: EmbeddedServer) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka.url, acks="all", linger_ms=1)
    await client.start()
    yield client
    await client.stop()
