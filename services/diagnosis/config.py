from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class DiagnosisSettings(ServiceSettings):
    metrics_port: int = Field(default=9104, ge=0, le=65535)
    max_observation_age_seconds: float = Field(
        default=3600.0, gt=0, description="A reading older than this is stale and not scored."
    )
    rules_file: str = Field(
        default="",
        description="Reviewed rules (TOML): NEWS2 chart, responses, escalation times, bed"
        " requests, pathways. Empty: the built-in services/diagnosis/rules.toml.",
    )
    hospital_layout: str = Field(
        default="", description="Hospital layout TOML (which wards are general wards)."
    )
    tick_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often overdue alerts and held changes are checked.",
    )
    restore_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Time allowed to read patients.alerts back at start."
    )
