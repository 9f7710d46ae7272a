"""Settings every service shares, read once from the environment at the edge (pydantic-settings).

Kafka and Redis addresses use the conventional names `KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL`;
everything else is prefixed `WARDFLOW_`. Each process gets its own environment, so a field such as
`WARDFLOW_METRICS_PORT` means "this process's metrics port".
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every wardflow service needs: the broker, the topics, metrics and logging."""

    model_config = SettingsConfigDict(env_prefix="WARDFLOW_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "WARDFLOW_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="How long a fetch may wait for data. The embedded broker answers a long-poll "
        "only when this expires, so it is kept small there (10-20 ms).",
    )
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    kafka_replication_factor: int = Field(
        default=1, ge=1, le=10, description="Replicas of each topic wardflow creates."
    )
    kafka_max_batch: int = Field(
        default=2000,
        ge=1,
        le=10_000,
        description="Records per poll. A stage waits for the broker's acknowledgement of one "
        "batch's outputs before it takes the next, so this caps a stage at about this many "
        "records per round trip: 500 capped cleaning near 5,000 events/s (bench/README.md).",
    )
    kafka_producer_batch_bytes: int = Field(
        default=1_000_000,
        ge=16_384,
        le=100_000_000,
        description="Largest record batch a producer sends to one partition. A stage's outputs "
        "to a partition go as one batch; a smaller limit splits them, and a partition's next "
        "batch waits for the previous one's acknowledgement: with aiokafka's 16 KiB default, "
        "cleaning made three times the produce requests at 2,000 events/s (bench/README.md). Keep "
        "it under the broker's and topics' message.max.bytes (Apache Kafka: 1,048,588).",
    )
    topic_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]*$", description="Prefix for every topic name."
    )
    consumer_group: str = Field(default="", description="Consumer group; default per service.")
    consumer_lag_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often a consuming stage refreshes wardflow_consumer_lag_records.",
    )
    commit_interval_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="A consuming stage commits its offsets at most this often (0: after every "
        "batch). A crash or a rebalance replays at most this much more; duplicates are dropped "
        "downstream by event id.",
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9100, ge=0, le=65535, description="0 disables /metrics.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def group_for(self, service: str) -> str:
        return self.consumer_group or f"wardflow-{service}"
