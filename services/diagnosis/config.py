from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class DiagnosisSettings(ServiceSettings):
    metrics_port: int = Field(default=9104, ge=0, le=65535)
    max_observation_age_seconds: float = Field(
        default=3600.0, gt=0, description="A reading older than this is stale and not scored."
    )
