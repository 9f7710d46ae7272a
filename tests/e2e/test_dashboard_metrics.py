"""Every metric the Grafana dashboard queries is exposed by the live stack.

`wardflow up` starts the five services; a few events go through ingest so that the stages have
counted something; then each service's /metrics is scraped and parsed with prometheus_client's
text parser. A queried series must belong to an exposed family of the right type (`_total` on a
counter, `_bucket`/`_sum`/`_count` on a histogram, a gauge by its own name), and the labels a
query groups or matches by must be on that family's samples.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard import Family, family_of, load_dashboard, merge, parse_exposition, queries
from tests.e2e.test_wardflow_up import (
    SERVICES,
    assert_all_gone,
    descendants,
    start_up,
    vitals,
    wait_for_stack,
)
from tests.support import eventually

pytestmark = pytest.mark.e2e

# Metrics a panel may query before any service exposes them (a metric being added in parallel);
# empty: every queried metric must be exposed by the live stack.
COMING: dict[str, frozenset[str]] = {}


def now() -> str:
    return datetime.now(UTC).isoformat()


def dashboard_gaps(families: dict[str, Family]) -> list[str]:
    """What the dashboard queries that the pages do not expose (or expose with other labels)."""
    gaps: list[str] = []
    for query in queries(load_dashboard()):
        labels: set[str] = set()
        checkable = True
        for series in sorted(query.series):
            family = family_of(series, families)
            if family is None:
                if series in COMING:
                    labels |= COMING[series]
                    continue
                gaps.append(f"{query.where}: {series} is not exposed by any service")
                checkable = False
            elif family.has_samples:
                labels |= family.sample_labels
            else:
                checkable = False  # declared, never set yet: its labels are unknown
        unknown = query.labels - labels - {"le"}
        if checkable and unknown:
            gaps.append(f"{query.where}: no queried metric has label(s) {sorted(unknown)}")
    return gaps


async def scrape(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, Family]:
    pages = [parse_exposition((await client.get(urls[name])).text) for name in SERVICES]
    return merge(pages)


async def test_every_metric_the_dashboard_queries_is_exposed(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    process = start_up(var_dir, "--no-simulate")
    try:
        stack = await wait_for_stack(process, var_dir)
        headers = {"Authorization": f"Bearer {stack['credential']['api_key']}"}
        impossible: dict[str, Any] = {
            "kind": "VitalSignsObserved",
            "occurred_at": now(),
            "patient_id": "DASH-1",
            "measurements": [{"parameter": "heart_rate", "value": 900, "unit": "/min"}],
        }
        events = [
            {
                "kind": "PatientAdmitted",
                "occurred_at": now(),
                "patient_id": "DASH-1",
                "ward": "WARD-A",
            },
            vitals("DASH-1"),  # NEWS2 high: an assessment, an open alert
            impossible,  # cleaning dead-letters it
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{stack['ingest_url']}/v1/events", json={"events": events}, headers=headers
            )
            assert response.status_code == 202, response.text
            refused = await client.post(f"{stack['ingest_url']}/v1/events", json={"events": []})
            assert refused.status_code == 401  # ingest counts a refusal too

            urls = stack["metrics_urls"]

            async def every_stage_has_counted() -> bool:
                families = await scrape(client, urls)
                wanted = (
                    "wardflow_assessments",
                    "wardflow_events_rejected",
                    "wardflow_bed_wait_seconds",
                )
                return all(families.get(n) and families[n].has_samples for n in wanted)

            await eventually(every_stage_has_counted, timeout_seconds=60)
            families = await scrape(client, urls)
    finally:
        children = descendants(process.pid) if process.poll() is None else []
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 90)
    assert code == 0
    assert_all_gone(children)
    assert dashboard_gaps(families) == []
