from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class FusionSettings(ServiceSettings):
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    partitions: int = Field(
        default=4, ge=1, description="Partitions of events.clean; the state table matches them."
    )
    state_dir: str = Field(default="var/fusion", description="Faust's local data directory.")
