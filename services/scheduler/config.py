from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator

from services.common.auth import strong_dev_keys
from services.common.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    metrics_port: int = Field(default=9105, ge=0, le=65535)
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "WARDFLOW_REDIS_URL"),
    )
    redis_key_prefix: str = Field(default="wardflow", pattern=r"^[A-Za-z0-9_-]+$")
    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL names a node of a Redis Cluster (the client discovers the others);"
        " false: a single Redis.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)
    hospital_layout: str = Field(
        default="", description="Path to a hospital layout TOML; empty uses the built-in example."
    )
    scheduler_policy_file: str = Field(
        default="",
        description="Reviewed scheduling policy (TOML): critical-care queue priority credits and"
        " the bed tariff. Empty: the built-in services/scheduler/policy.toml.",
    )
    reservation_sweep_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often expired bed reservations are released."
    )
    broker_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a write of the HTTP API waits for the broker before answering 503.",
    )
    seen_event_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long applied event ids are remembered."
    )
    sources_file: str = Field(
        default="",
        description="The sources file ingest reads (TOML [[sources]]): entries with `read = true` "
        "may read the HTTP API with `Authorization: Bearer <key>`, entries with `write = true` may "
        "write through it (bed requests, cancellations, blocks).",
    )
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Development only: name -> plain API key, as JSON, the same variable as "
        "ingest's (WARDFLOW_API_KEYS). Every such key may read and write through the HTTP API.",
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_are_strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return strong_dev_keys(keys)
