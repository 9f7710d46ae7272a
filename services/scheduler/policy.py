"""The scheduler's reviewed policy file: critical-care queue priority and the bed tariff.

`load_policy` reads TOML (the built-in `policy.toml` when no path is given) and validates it with
pydantic before the service starts: every error names the entry (`tariff.per_day.icu`) and why.
Pure data and validation; the rules that use it are in `domain.py`.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.vocabulary import Band, LevelOfCare
from services.common.reviewed import load_reviewed, validated

Minutes = Annotated[float, Field(ge=0, le=1440)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
EquipmentId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,31}$")]
Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]


class PolicyError(ValueError):
    """The policy file is invalid; the message lists every entry at fault."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BandCredits(Strict):
    """Acuity credit by NEWS2 band, in minutes; never lower for a higher band."""

    low: Minutes
    low_medium: Minutes
    medium: Minutes
    high: Minutes

    @model_validator(mode="after")
    def _rising(self) -> BandCredits:
        credits = [self.low, self.low_medium, self.medium, self.high]
        if any(b < a for a, b in pairwise(credits)):
            raise ValueError("credits must not fall as the band rises (low <= ... <= high)")
        return self

    def minutes(self, band: Band) -> float:
        return float(getattr(self, band.value))


class Priority(Strict):
    """Queue order of critical-care requests: request time minus the acuity credit."""

    band_credit_minutes: BandCredits
    aggregate_credit_minutes: Annotated[float, Field(ge=0, le=60)]


class EquipmentAddOn(Strict):
    per_day: Money
    description: Text


class PerDay(Strict):
    """Cost of one bed-day, by level of care."""

    emergency: Money
    general: Money
    hdu: Money
    icu: Money

    def amount(self, level: LevelOfCare) -> Decimal:
        return Decimal(getattr(self, level.value))


class Tariff(Strict):
    version: Version
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    per_day: PerDay
    equipment: dict[EquipmentId, EquipmentAddOn] = {}


class Reservations(Strict):
    """How long a reserved bed waits for its patient before it is released: a critical-care
    one (`hold_minutes`), one reserved for a bed manager's ward request (`ward_hold_minutes`)."""

    hold_minutes: Annotated[float, Field(gt=0, le=1440)]
    ward_hold_minutes: Annotated[float, Field(gt=0, le=1440)]


class SchedulingPolicy(Strict):
    version: Version
    reference: Text
    priority: Priority
    reservations: Reservations
    tariff: Tariff


def policy_from_dict(data: dict[str, object], origin: str = "policy") -> SchedulingPolicy:
    return validated(SchedulingPolicy, data, origin, PolicyError)


def load_policy(path: str = "") -> SchedulingPolicy:
    """The policy from a TOML file, or the built-in reviewed policy when `path` is empty.
    Decimals in the file are read exactly (no binary floats for money)."""
    return load_reviewed(
        SchedulingPolicy,
        path,
        package="services.scheduler",
        built_in="policy.toml",
        error=PolicyError,
        parse_float=Decimal,
    )


DEFAULT_POLICY = load_policy()


def configured_policy() -> SchedulingPolicy:
    """The policy WARDFLOW_SCHEDULER_POLICY_FILE names (empty: the built-in one)."""
    from services.scheduler.config import SchedulerSettings

    path = SchedulerSettings().scheduler_policy_file
    return load_policy(path) if path else DEFAULT_POLICY
