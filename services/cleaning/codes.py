"""Observation codes to canonical parameters: LOINC, then the operator's local code map.

Pure: the local code maps arrive as TOML text (the app reads the files). The format, one table per
code system (HL7 v2 OBX-3.3, or `Measurement.code_system`), one line per code:

    [codes."99LOCAL"]
    HR = "heart_rate"
    NBP-S = "systolic_bp"

    [codes."*"]          # a code sent with any code system, or none
    TEMP = "temperature"

`"unmapped"` as the parameter removes a mapping an earlier layer (the shipped default) made.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from schemas.codes import LOINC_VITAL_SIGNS
from schemas.observations import Measurement
from schemas.vocabulary import VitalParameter

LOINC_SYSTEMS = frozenset({"LN", "http://loinc.org"})
ANY_SYSTEM = "*"
UNMAPPED = "unmapped"
MAX_CODE_LENGTH = 64  # as Measurement.code and Measurement.code_system

LOINC_PARAMETERS: dict[str, VitalParameter] = LOINC_VITAL_SIGNS

LocalCodes = dict[tuple[str, str], VitalParameter | None]
"""(code system, code) -> parameter; None where a layer explicitly unmaps a code."""


class LocalCodesError(ValueError):
    """A local code map is invalid; the message names the file, the table and the code."""


def parse_local_codes(text: str, origin: str) -> LocalCodes:
    """Read one local code map; every error names `origin` (the file) and the entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LocalCodesError(f"{origin}: not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"codes"})
    if unknown:
        raise LocalCodesError(
            f'{origin}: unknown key(s) {unknown}; a code map has only [codes."<system>"] tables'
        )
    systems = data.get("codes", {})
    if not isinstance(systems, Mapping):
        raise LocalCodesError(f'{origin}: codes must be tables, [codes."<system>"]')
    table: LocalCodes = {}
    for system, codes in systems.items():
        where = f'{origin}: [codes."{system}"]'
        if not 1 <= len(system) <= MAX_CODE_LENGTH:
            raise LocalCodesError(f"{where}: a code system has 1-{MAX_CODE_LENGTH} characters")
        if not isinstance(codes, Mapping):
            raise LocalCodesError(f'{where}: must be a table of CODE = "parameter" lines')
        for code, name in codes.items():
            table[(system, code)] = _parameter(f"{where} {code}", code, name)
    return table


def _parameter(where: str, code: str, name: Any) -> VitalParameter | None:
    if not 1 <= len(code) <= MAX_CODE_LENGTH:
        raise LocalCodesError(f"{where}: a code has 1-{MAX_CODE_LENGTH} characters")
    if not isinstance(name, str):
        raise LocalCodesError(f'{where}: must be a parameter name in quotes, e.g. "heart_rate"')
    if name == UNMAPPED:
        return None
    try:
        return VitalParameter(name)
    except ValueError:
        known = ", ".join([*(p.value for p in VitalParameter), UNMAPPED])
        raise LocalCodesError(f"{where}: {name!r} is not one of {known}") from None


class CodeMap:
    """Resolves a measurement to its parameter. Later layers override earlier ones, code by code."""

    def __init__(self, *layers: LocalCodes) -> None:
        merged: LocalCodes = {}
        for layer in layers:
            merged.update(layer)
        self.local = {key: p for key, p in merged.items() if p is not None}

    def resolve(self, measurement: Measurement) -> VitalParameter | None:
        """The parameter a measurement names, or None when no table knows its code.

        In order: `parameter` as sent; its `loinc`; `code` in a LOINC system; (`code_system`,
        `code`) in the local map; `code` under the local map's "*" system.
        """
        if measurement.parameter is not None:
            return measurement.parameter
        if measurement.loinc is not None:
            parameter = LOINC_PARAMETERS.get(measurement.loinc)
            if parameter is not None:
                return parameter
        code, system = measurement.code, measurement.code_system
        if code is None:
            return None
        if system is not None:
            found = LOINC_PARAMETERS.get(code) if system in LOINC_SYSTEMS else None
            found = found or self.local.get((system, code))  # an operator may add LOINC codes
            if found is not None:
                return found
        return self.local.get((ANY_SYSTEM, code))
