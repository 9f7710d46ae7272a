"""The live terminal view of `wardflow up` and its closing summary (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from schemas.vocabulary import Band, BedStatus
from services.launcher.monitor import SERVICES, Outcomes, StageCounts


def pipeline_table(counts: dict[str, StageCounts], rates: dict[str, tuple[float, float]]) -> Table:
    table = Table(title="Pipeline", expand=False)
    for column in ("stage", "in/s", "out/s", "in", "out", "rejected"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name in SERVICES:
        c = counts.get(name, StageCounts())
        rate_in, rate_out = rates.get(name, (0.0, 0.0))
        table.add_row(
            name,
            f"{rate_in:,.0f}",
            f"{rate_out:,.0f}",
            f"{c.events_in:,.0f}",
            f"{c.events_out:,.0f}",
            f"{c.rejected:,.0f}",
        )
    return table


def outcomes_tables(outcomes: Outcomes) -> list[Table]:
    bands = Table(title="Assessments by band")
    for band in [*(b.value for b in Band), "incomplete"]:
        bands.add_column(band, justify="right")
    bands.add_row(
        *(str(outcomes.bands.get(b.value, 0)) for b in Band), str(outcomes.bands["incomplete"])
    )

    beds = Table(title="Beds by ward")
    beds.add_column("ward")
    for status in BedStatus:
        beds.add_column(status.value, justify="right")
    for ward, statuses in outcomes.beds_by_ward().items():
        beds.add_row(ward, *(str(statuses.get(s.value, 0)) for s in BedStatus))

    latency = outcomes.latency_quantiles()
    flow = Table(title="Outcomes")
    for column in (
        "allocations",
        "escalations",
        "HDU/ICU requests",
        "reserved",
        "e2e p50 s",
        "e2e p99 s",
        "assessments",
    ):
        flow.add_column(column, justify="right")
    flow.add_row(
        str(outcomes.allocations),
        str(outcomes.escalations),
        str(outcomes.critical_care_requests),
        str(outcomes.reservations),
        _seconds(latency["p50"]),
        _seconds(latency["p99"]),
        str(latency["count"]),
    )
    return [bands, beds, flow]


def live_view(
    counts: dict[str, StageCounts],
    rates: dict[str, tuple[float, float]],
    outcomes: Outcomes,
    header: str,
) -> Group:
    return Group(header, pipeline_table(counts, rates), *outcomes_tables(outcomes))


def summary(counts: dict[str, StageCounts], outcomes: Outcomes, elapsed: float) -> dict[str, Any]:
    """The run's summary, as written to var/summary.json."""
    services = {
        name: {
            "events_in": int(counts.get(name, StageCounts()).events_in),
            "events_out": int(counts.get(name, StageCounts()).events_out),
            "events_rejected": int(counts.get(name, StageCounts()).rejected),
        }
        for name in SERVICES
    }
    latency = outcomes.latency_quantiles()
    return {
        "elapsed_seconds": round(elapsed, 1),
        "services": services,
        "assessments_by_band": {
            **{band.value: outcomes.bands.get(band.value, 0) for band in Band},
            "incomplete": outcomes.bands["incomplete"],
        },
        "beds_by_status": outcomes.beds_by_status(),
        "beds_by_ward": outcomes.beds_by_ward(),
        "allocations": outcomes.allocations,
        "escalations": outcomes.escalations,
        "critical_care_requests": outcomes.critical_care_requests,
        "critical_care_beds_reserved": outcomes.reservations,
        "end_to_end_latency_seconds": {
            "p50": latency["p50"],
            "p99": latency["p99"],
            "samples": latency["count"],
            "measured": "ingest accepted -> assessment issued",
        },
    }


def _seconds(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.3f}"
