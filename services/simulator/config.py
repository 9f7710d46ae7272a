from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    """The hospital simulator sends through ingest over HTTP, exactly as a real system would."""

    model_config = SettingsConfigDict(env_prefix="WARDFLOW_SIMULATOR_", frozen=True, extra="ignore")

    ingest_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr = SecretStr("")
    seed: int = 7
    speedup: float = Field(default=60.0, gt=0, description="Simulated seconds per real second.")
    monitored_patients: int = Field(default=40, ge=0)
    vitals_interval_seconds: float = Field(
        default=60.0, gt=0, description="Simulated seconds between a monitor's readings."
    )
    duration_seconds: float = Field(default=0.0, ge=0, description="0 runs until stopped.")
    arrivals_per_hour: float = Field(
        default=3.0, ge=0, description="Mean new patients per simulated hour (Poisson)."
    )
    mean_stay_hours: float = Field(
        default=12.0, gt=0, description="Mean simulated length of stay (exponential, at least 2 h)."
    )
    ceiling_general_fraction: float = Field(
        default=0.08,
        ge=0,
        le=1,
        description="Admitted patients given a ceiling of care of ward-based care only "
        "(CeilingOfCareSet `general`, set by a consultant on admission).",
    )
    ceiling_hdu_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Admitted patients given a ceiling of HDU care, not for ICU (`hdu`).",
    )
    suspected_infection_probability: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Chance that a deteriorating patient's first reading above 38 C is followed, "
        "a few simulated minutes later, by SuspectedInfectionSet (considered once per patient).",
    )
    acknowledgement_mean_minutes: float = Field(
        default=12.0,
        ge=0,
        description="Mean simulated minutes (exponential) from a patient's illness reaching the "
        "NEWS2 medium or high band to a nurse's AlertAcknowledged.",
    )
    never_acknowledged_fraction: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Band crossings whose alert nobody acknowledges, so that escalations happen.",
    )
    lab_after_onset_minutes: float = Field(
        default=60.0,
        ge=0,
        description="Simulated minutes (+/- 10) from a deterioration's onset to its white cell "
        "count result.",
    )
    occurred_at_clock: Literal["wall", "simulated"] = Field(
        default="wall",
        description="`wall` stamps events with the real time each simulated moment maps to (never "
        "in the future, as a real hospital); `simulated` with the simulated time (runs ahead).",
    )
    scheduler_url: str = Field(
        default="http://127.0.0.1:8081",
        description="Where housekeeping learns dirty beds: GET /v1/wards/{ward}/beds, with "
        "`api_key` (the scheduler must accept it as a reader).",
    )
    housekeeping_poll_seconds: float = Field(
        default=5.0, ge=0, description="Real seconds between dirty-bed polls; 0 disables."
    )
    target_events_per_second: float = Field(
        default=0.0,
        ge=0,
        description="0 is realistic mode; above 0, vital signs are sent at this real rate (load).",
    )
    startup_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long to wait for ingest's /healthz at start."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _ceilings_are_a_fraction(self) -> SimulatorSettings:
        if self.ceiling_general_fraction + self.ceiling_hdu_fraction > 1:
            raise ValueError("ceiling_general_fraction + ceiling_hdu_fraction must not exceed 1")
        return self
