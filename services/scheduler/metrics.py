"""The scheduler's Prometheus metrics (labels from small fixed sets: ward, status, reason,
level_of_care, band, origin, outcome; never a patient or a bed). The ward and queue gauges are
refreshed from Redis every tick (`gauges.py`): every replica reports the whole hospital."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGE = "scheduler"
"""The stage name in every per-stage metric's labels."""

BEDS = Gauge("wardflow_beds", "Beds by ward and status.", ["ward", "status"])
BEDS_BLOCKED = Gauge(
    "wardflow_beds_blocked",
    "Blocked beds by ward and reason code (infection, maintenance, staffing, other, unspecified).",
    ["ward", "reason"],
)
BED_REQUESTS_WAITING = Gauge(
    "wardflow_bed_requests_waiting", "Patients waiting for a bed.", ["ward"]
)
BED_OCCUPANCY = Gauge(
    "wardflow_bed_occupancy_ratio",
    "Occupied beds over all the ward's beds (0 to 1), by ward and its level of care.",
    ["ward", "level_of_care"],
)
BED_REQUEST_OLDEST_WAIT = Gauge(
    "wardflow_bed_request_oldest_wait_seconds",
    "How long the patient waiting longest for a bed of the ward has waited; 0 when none waits.",
    ["ward"],
)
ALLOCATIONS = Counter("wardflow_bed_allocations_total", "Beds given to patients.", ["ward"])
TRANSITIONS_REFUSED = Counter(
    "wardflow_bed_transitions_refused_total", "Illegal bed changes refused.", ["ward"]
)
TIME_TO_BED_SECONDS = Histogram(
    "wardflow_time_to_bed_seconds",
    "From the bed request to the bed, by level of care.",
    ["level_of_care"],
    buckets=(0.1, 1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200),
)
BED_WAIT_SECONDS = Histogram(
    "wardflow_bed_wait_seconds",
    "From the bed request to the bed (reserved or assigned), by acuity band (low, low_medium,"
    " medium, high, unknown) and origin (emergency, ward, critical_care, transfer): fairness.",
    ["band", "origin"],
    buckets=(0.1, 1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200),
)
CRITICAL_CARE_REQUESTS = Counter(
    "wardflow_critical_care_requests_total",
    "Critical-care bed request decisions: reserved, waiting, withdrawn, or no_ward (the layout has"
    " no ward of that level).",
    ["level_of_care", "outcome"],
)
CRITICAL_CARE_WAITING = Gauge(
    "wardflow_critical_care_requests_waiting",
    "Critical-care bed requests queued, by level of care.",
    ["level_of_care"],
)
CRITICAL_CARE_OLDEST_WAIT = Gauge(
    "wardflow_critical_care_oldest_wait_seconds",
    "How long the oldest queued critical-care bed request (no bed reserved yet) of the level has"
    " waited; 0 when none is queued.",
    ["level_of_care"],
)
LAYOUT_CHANGES = Counter(
    "wardflow_layout_changes_total",
    "Ward layout changes (hospital.layout) this replica applied: applied, beds_kept (applied, but"
    " beds that left the ward were in use and stay until free), invalid (a record not a valid"
    " WardLayoutSet: skipped).",
    ["outcome"],
)
