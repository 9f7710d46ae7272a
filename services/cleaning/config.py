from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class CleaningSettings(ServiceSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    dedupe_window_events: int = Field(
        default=100_000,
        ge=1,
        description="How many recent events are remembered for dedupe, by event id and by "
        "reading (source, patient, device, observation time).",
    )
    local_codes_file: str = Field(
        default="",
        description="TOML map of local observation codes to parameters, merged over the shipped "
        "default (services/cleaning/local_codes.toml), code by code.",
    )
    flat_line_seconds: float = Field(
        default=600.0,
        ge=0,
        description="A continuously measured value repeated unchanged for longer than this is a "
        "flat-line artifact; 0 disables the check.",
    )
    flat_line_memory: int = Field(
        default=100_000, ge=1, description="How many (patient, parameter) runs are remembered."
    )
    max_clock_skew_seconds: float = Field(
        default=120.0,
        ge=0,
        description="An event that occurred further in the future than this is dead-lettered.",
    )
    state_retention_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="An event older than this is still cleaned, and marked late.",
    )
