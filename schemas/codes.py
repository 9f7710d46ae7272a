"""Standard codes of the vital signs and laboratory results wardflow reads: one table for every
stage that maps codes.

A sender's own (local) codes are not here: cleaning maps them with the operator's code map.
"""

from __future__ import annotations

from schemas.vocabulary import VitalParameter

BLOOD_PRESSURE_PANEL = "85354-9"  # systolic and diastolic as components, or "140/90"
CONSCIOUSNESS_CODES = ("67775-7", "1104441000000107")  # LOINC responsiveness; SNOMED ACVPU

LOINC_VITAL_SIGNS: dict[str, VitalParameter] = {
    "8867-4": VitalParameter.HEART_RATE,
    "8889-8": VitalParameter.HEART_RATE,  # heart rate by pulse oximetry
    "9279-1": VitalParameter.RESPIRATORY_RATE,
    "2708-6": VitalParameter.SPO2,  # oxygen saturation in arterial blood
    "59408-5": VitalParameter.SPO2,  # ... by pulse oximetry
    "8480-6": VitalParameter.SYSTOLIC_BP,
    "8462-4": VitalParameter.DIASTOLIC_BP,
    BLOOD_PRESSURE_PANEL: VitalParameter.BLOOD_PRESSURE,
    "8310-5": VitalParameter.TEMPERATURE,
    "8331-1": VitalParameter.TEMPERATURE,  # oral
    "8328-7": VitalParameter.TEMPERATURE,  # axillary
    "3151-8": VitalParameter.OXYGEN_FLOW,
    "3150-0": VitalParameter.FIO2,
    # laboratory results (SIRS): sent with category "laboratory", read exactly like vital signs
    "6690-2": VitalParameter.WHITE_CELL_COUNT,  # leukocytes [#/volume] in blood, automated count
    "26464-8": VitalParameter.WHITE_CELL_COUNT,  # leukocytes [#/volume] in blood
    "804-5": VitalParameter.WHITE_CELL_COUNT,  # leukocytes [#/volume] in blood, manual count
    "2019-8": VitalParameter.PACO2,  # carbon dioxide [partial pressure] in arterial blood
}
