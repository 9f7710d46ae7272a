"""Units: the UCUM codes wardflow accepts, converted to each parameter's canonical unit with pint.

pint is the source of truth. For every (UCUM code, parameter) pair it accepts, the conversion is
derived from pint once, on first use, as an affine map (`value * scale + offset`, from pint's
conversions of 0 and 1): every unit here is linear or, for temperatures, affine. The per-value
hot path is then one dictionary lookup and one multiply-add, not a pint quantity. A pair that
pint finds dimensionally incompatible (a `%` heart rate) is not in the table: for that parameter
it is an unknown unit.

Cell counts use UCUM's powers of ten as units (`10*9/L`, `10*3/uL`): pint has no such unit, so
the registry gets two dimensionless ones, `ucum_10_3` = 1e3 and `ucum_10_9` = 1e9 (see
`unit_registry`). 10*3/uL is then 10*9/L by pint's own arithmetic, as is /nL.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from schemas.vocabulary import VitalParameter

if TYPE_CHECKING:
    import pint

POWERS_OF_TEN: tuple[str, ...] = ("ucum_10_3 = 1e3", "ucum_10_9 = 1e9")
"""pint definitions of UCUM's `10*3` and `10*9`, the units of cell counts."""

UCUM_TO_PINT: dict[str, str] = {
    "Cel": "degC",
    "[degF]": "degF",
    "K": "kelvin",
    "mm[Hg]": "mmHg",
    "kPa": "kilopascal",
    "%": "percent",
    "1": "dimensionless",  # a fraction: 0.97 -> 97 %
    "/min": "1/minute",
    "/s": "1/second",
    "L/min": "liter/minute",
    "l/min": "liter/minute",  # UCUM accepts both l and L for the litre
    "mL/min": "milliliter/minute",
    "ml/min": "milliliter/minute",
    "10*9/L": "ucum_10_9/liter",  # cell counts: 10^9 per litre, and its equivalents
    "10*9/l": "ucum_10_9/liter",
    "10*3/uL": "ucum_10_3/microliter",
    "10*3/mm3": "ucum_10_3/millimeter**3",
    "/nL": "1/nanoliter",
}
"""The UCUM codes wardflow accepts (after annotations such as `{beats}` are removed)."""

ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]",  # common non-UCUM spellings, accepted since the first release
    "bpm": "/min",
    "264864": "/min",  # ISO/IEEE 11073 (MDC) unit codes, as IHE PCD-01 gateways send them
    "264928": "/min",
    "266016": "mm[Hg]",
    "262688": "%",
    "268192": "Cel",
    "10^9/L": "10*9/L",  # how laboratory systems print cell counts
    "10E9/L": "10*9/L",
    "x10^9/L": "10*9/L",
    "G/L": "10*9/L",  # giga per litre
    "10^3/uL": "10*3/uL",
    "10E3/uL": "10*3/uL",
    "K/uL": "10*3/uL",  # thousands per microlitre
}
"""Unit codes that are not UCUM but name a UCUM unit unambiguously."""


CANONICAL_UNIT: dict[VitalParameter, str] = {
    VitalParameter.HEART_RATE: "/min",
    VitalParameter.RESPIRATORY_RATE: "/min",
    VitalParameter.SPO2: "%",
    VitalParameter.SYSTOLIC_BP: "mm[Hg]",
    VitalParameter.DIASTOLIC_BP: "mm[Hg]",
    VitalParameter.TEMPERATURE: "Cel",
    VitalParameter.OXYGEN_FLOW: "L/min",
    VitalParameter.FIO2: "%",
    VitalParameter.WHITE_CELL_COUNT: "10*9/L",
    VitalParameter.PACO2: "mm[Hg]",
}
"""Each measured parameter's canonical UCUM unit (the unit in its `VitalSigns` field name)."""

_ANNOTATION = re.compile(r"\{[^{}]*\}")

UNITLESS_TEMPERATURE: tuple[tuple[float, float, str], ...] = (
    (25.0, 45.0, "Cel"),
    (77.0, 113.0, "[degF]"),  # 25-45 Cel
)
"""How a temperature sent without a unit is read: by the range its value falls in."""


class UnknownUnit(Exception):
    """The unit is not one wardflow accepts for the parameter."""


def ucum_code(unit: str) -> str:
    """The UCUM code a sent unit stands for: annotations dropped, known aliases resolved."""
    code = _ANNOTATION.sub("", unit) if "{" in unit else unit
    return ALIASES.get(code, code) or "1"  # `{beats}` alone is the unit 1, as in UCUM


def unit_registry() -> pint.UnitRegistry:
    """A pint registry that also knows UCUM's powers of ten (`POWERS_OF_TEN`)."""
    import pint  # the registry takes ~0.25 s to load: only a process that cleans pays for it

    registry: pint.UnitRegistry = pint.UnitRegistry(cache_folder=None)
    for definition in POWERS_OF_TEN:
        registry.define(definition)
    return registry


@cache
def affine_conversions() -> dict[tuple[str, VitalParameter], tuple[float, float]]:
    """(UCUM code, parameter) -> (scale, offset) to the canonical unit, derived once from pint."""
    import pint

    registry = unit_registry()
    table: dict[tuple[str, VitalParameter], tuple[float, float]] = {}
    for parameter, canonical in CANONICAL_UNIT.items():
        target = UCUM_TO_PINT[canonical]
        for code, expression in UCUM_TO_PINT.items():
            try:
                zero = registry.Quantity(0.0, expression).to(target).magnitude
                one = registry.Quantity(1.0, expression).to(target).magnitude
            except pint.DimensionalityError:
                continue
            table[(code, parameter)] = (float(one - zero), float(zero))
    return table


def accepted_units(parameter: VitalParameter) -> list[str]:
    """The UCUM codes accepted for a parameter, for error messages and documentation."""
    return sorted(code for code, p in affine_conversions() if p is parameter)


def to_canonical_unit(parameter: VitalParameter, unit: str, value: float) -> float:
    """`value` in `unit` converted to the parameter's canonical unit; raises UnknownUnit."""
    table = affine_conversions()
    conversion = table.get((unit, parameter))
    if conversion is None:
        conversion = table.get((ucum_code(unit), parameter))
        if conversion is None:
            raise UnknownUnit(unit)
    scale, offset = conversion
    return value * scale + offset


def infer_temperature_unit(value: float) -> str | None:
    """The unit a temperature sent without one must be in, by its plausible range; None if none."""
    for lowest, highest, unit in UNITLESS_TEMPERATURE:
        if lowest <= value <= highest:
            return unit
    return None
