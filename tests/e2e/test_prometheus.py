"""A real Prometheus server scrapes the stack that `wardflow up` starts, with the repository's
alert rules loaded: every service is up, and PromQL gives back what the test's events caused."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from services.common.embedded import free_port
from tests.e2e.test_wardflow_up import SERVICES, start_up, vitals, wait_for_stack

PROMETHEUS = shutil.which("prometheus")
RULES = sorted((Path(__file__).resolve().parents[2] / "deploy/prometheus/rules").glob("*.yml"))
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not found on PATH: install Prometheus (Debian: apt-get install "
        "prometheus)",
    ),
]


def prometheus_config(metrics_urls: dict[str, str]) -> dict[str, Any]:
    """One job per service at the port `wardflow up` gave it, scraped every second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": urlsplit(metrics_urls[name]).path,
                "static_configs": [{"targets": [urlsplit(metrics_urls[name]).netloc]}],
            }
            for name in SERVICES
        ],
    }


class PromQL:
    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    async def get(self, path: str, **params: str) -> Any:
        answer = (await self.client.get(f"{self.base}{path}", params=params)).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    async def values(self, query: str) -> list[float]:
        return [
            float(s["value"][1]) for s in (await self.get("/api/v1/query", query=query))["result"]
        ]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        await asyncio.sleep(0.25)


async def test_prometheus_scrapes_every_service_and_sees_what_the_events_did(
    tmp_path: Path,
) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    stack_process = start_up(var_dir, "--no-simulate")
    prometheus: subprocess.Popen[bytes] | None = None
    prometheus_log = tmp_path / "prometheus.log"
    try:
        stack = await wait_for_stack(stack_process, var_dir)
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(stack["metrics_urls"])))
        port = free_port()
        assert PROMETHEUS is not None
        with prometheus_log.open("wb") as log:
            prometheus = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        headers = {"Authorization": f"Bearer {stack['credential']['api_key']}"}
        now = datetime.now(UTC).isoformat()
        events = [
            {
                "kind": "PatientAdmitted",
                "occurred_at": now,
                "patient_id": "PROM-1",
                "ward": "WARD-A",
            },
            {
                "kind": "PatientAdmitted",
                "occurred_at": now,
                "patient_id": "PROM-2",
                "ward": "WARD-A",
            },
            vitals("PROM-1"),
        ]
        sent_at = time.time()
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(
                f"{stack['ingest_url']}/v1/events", json={"events": events}, headers=headers
            )
            assert response.status_code == 202, response.text
            prom = PromQL(client, f"http://127.0.0.1:{port}")

            async def ready() -> bool:
                assert prometheus is not None and prometheus.poll() is None, (
                    prometheus_log.read_text()
                )
                try:
                    return (await client.get(f"{prom.base}/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(ready, "prometheus ready")

            async def all_up() -> bool:
                up = await prom.get("/api/v1/query", query="up")
                health = {s["metric"]["job"]: s["value"][1] for s in up["result"]}
                return health == dict.fromkeys(SERVICES, "1")

            await until(all_up, "every service's target up == 1")

            async def shows(query: str, check: Callable[[list[float]], bool]) -> bool:
                return check(await prom.values(query))

            expectations: list[tuple[str, Callable[[list[float]], bool]]] = [
                # ingest accepted what the test sent
                ('sum(wardflow_events_in_total{stage="ingest"})', lambda v: v == [3.0]),
                # diagnosis scored PROM-1's vital signs high
                ('sum(wardflow_assessments_total{band="high"})', lambda v: v == [1.0]),
                # the scheduler gave both admissions a bed in WARD-A
                ('wardflow_beds{ward="WARD-A",status="occupied"}', lambda v: v == [2.0]),
                ('sum(wardflow_bed_allocations_total{ward="WARD-A"})', lambda v: v == [2.0]),
                # occupancy is occupied over all WARD-A's beds
                (
                    'wardflow_bed_occupancy_ratio{ward="WARD-A",level_of_care="general"}'
                    ' * on (ward) sum by (ward) (wardflow_beds{ward="WARD-A"})',
                    lambda v: len(v) == 1 and abs(v[0] - 2.0) < 1e-9,
                ),
                # every consuming stage reports its lag per input, and all caught up
                (
                    "count(wardflow_consumer_lag_records)",
                    lambda v: v == [6.0],  # cleaning, fusion, diagnosis, scheduler x3
                ),
                ("max(wardflow_consumer_lag_records)", lambda v: v == [0.0]),
                # every stage processed something after the test sent its events
                (
                    f"count(wardflow_last_processed_timestamp_seconds > {sent_at - 1})",
                    lambda v: v == [5.0],
                ),
                (
                    "wardflow_source_last_event_timestamp_seconds"
                    f'{{source="{stack["credential"]["source"]}"}}',
                    lambda v: len(v) == 1 and v[0] >= sent_at - 1,
                ),
                # an open high alert nobody has acknowledged yet, younger than its 30 minutes
                (
                    'wardflow_alert_oldest_unacknowledged_seconds{band="high"}',
                    lambda v: len(v) == 1 and 0 < v[0] < 1800,
                ),
            ]
            for query, check in expectations:
                await until(partial(shows, query, check), query)

            # The repository's rules are loaded and evaluate against the real series.
            async def rules_evaluated() -> bool:
                groups = (await prom.get("/api/v1/rules"))["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                never = "0001-01-01T00:00:00Z"
                return bool(rules) and all(r["lastEvaluation"] != never for r in rules)

            await until(rules_evaluated, "every rule evaluated once")
            groups = (await prom.get("/api/v1/rules"))["groups"]
            rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
            assert "WardflowStageStalled" in rules and "WardflowHighAlertUnacknowledged" in rules
            assert all(rule["health"] == "ok" for rule in rules.values()), rules
            firing = await prom.values('count(ALERTS{alertstate="firing"})')
            assert firing == [], "a healthy stack fires nothing"
    finally:
        if prometheus is not None and prometheus.poll() is None:
            prometheus.send_signal(signal.SIGTERM)
            await asyncio.to_thread(prometheus.wait, 30)
        stack_process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(stack_process.wait, 90)
    assert code == 0
