from __future__ import annotations

from pydantic import AliasChoices, Field

from services.common.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    metrics_port: int = Field(default=9105, ge=0, le=65535)
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "WARDFLOW_REDIS_URL"),
    )
    redis_key_prefix: str = Field(default="wardflow", pattern=r"^[A-Za-z0-9_-]+$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)
    hospital_layout: str = Field(
        default="", description="Path to a hospital layout TOML; empty uses the built-in example."
    )
    seen_event_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long applied event ids are remembered."
    )
