from __future__ import annotations

from pydantic import Field, field_validator

from services.common.settings import ServiceSettings
from services.fusion.domain import FusionPolicy
from services.fusion.readings import DEFAULT_MAX_AGE_SECONDS, PARAMETERS


class FusionSettings(ServiceSettings):
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    partitions: int = Field(
        default=4, ge=1, description="Partitions of events.clean (the changelog gets as many)."
    )
    restore_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Time allowed to read the patients' records back from the changelog when "
        "partitions are assigned.",
    )
    max_age_seconds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_AGE_SECONDS),
        description="How old a reading may be before a snapshot marks it stale, per parameter "
        "(the PatientReadings field names), as a JSON mapping; parameters not named keep their "
        "default: 900 s for heart rate, SpO2 and respiratory rate, 86400 s for the white cell "
        "count, 21600 s for PaCO2, 43200 s for the others.",
    )
    min_snapshot_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="At most one snapshot per patient per interval, unless a scoring-relevant "
        "change (location, SpO2 scale, a reading appearing, going stale or getting worse) "
        "needs one at once.",
    )
    changelog_interval_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a patient's changed record may wait before it is written to the "
        "changelog: each record is written at most once per interval (0: with every batch). "
        "The offsets are committed once every change before them is written, so a crash "
        "replays about this much input.",
    )
    flush_check_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the flush timer emits pending changes and newly stale readings.",
    )

    @field_validator("max_age_seconds")
    @classmethod
    def _known_parameters_with_defaults(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {', '.join(PARAMETERS)}")
        if any(age <= 0 for age in value.values()):
            raise ValueError("maximum ages must be positive")
        return {**DEFAULT_MAX_AGE_SECONDS, **value}

    def policy(self) -> FusionPolicy:
        return FusionPolicy(
            max_age_seconds=dict(self.max_age_seconds),
            min_snapshot_interval_seconds=self.min_snapshot_interval_seconds,
        )
