from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class CleaningSettings(ServiceSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    dedupe_window_events: int = Field(
        default=100_000, ge=1, description="How many recent event ids are remembered for dedupe."
    )
