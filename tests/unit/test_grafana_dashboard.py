"""The provisioned Grafana dashboard is valid, loads from where compose mounts it, and queries
what the brief asks of it. Whether the metrics it queries exist is checked on the live stack
(tests/e2e/test_dashboard_metrics.py); the helpers that check it are tested here."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.dashboard import (
    DASHBOARD,
    DASHBOARDS,
    PROVIDER,
    REPO,
    all_panels,
    family_of,
    load_dashboard,
    parse_exposition,
    queried_labels,
    queried_series,
    queries,
)

DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
COMPOSE = REPO / "docker-compose.yml"
GRID_COLUMNS = 24
# Core Grafana 12 panel types this dashboard may use.
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "barchart", "text"}
# What issue 7 asks the dashboard to show, as the series a query must select.
REQUIRED_SERIES = {
    "wardflow_events_in_total",
    "wardflow_events_out_total",
    "wardflow_consumer_lag_records",
    "wardflow_event_time_lag_seconds_bucket",
    "wardflow_events_rejected_total",
    "wardflow_assessments_total",
    "wardflow_alerts_unacknowledged",
    "wardflow_beds",
    "wardflow_bed_occupancy_ratio",
    "wardflow_time_to_bed_seconds_bucket",
    "wardflow_bed_wait_seconds_bucket",
}
# Gauges of the scheduler's shared Redis state: every scheduler replica reports the same figure,
# so a panel combines replicas with max (a sum would count each ward once per replica). Gauges a
# replica reports for its own partitions (alerts, consumer lag, stage ready) are summed instead.
SHARED_STATE_GAUGES = {
    "wardflow_beds",
    "wardflow_bed_requests_waiting",
    "wardflow_bed_occupancy_ratio",
    "wardflow_bed_request_oldest_wait_seconds",
    "wardflow_critical_care_requests_waiting",
    "wardflow_critical_care_oldest_wait_seconds",
}
PER_REPLICA_GAUGES = {
    "wardflow_alerts_unacknowledged",
    "wardflow_consumer_lag_records",
    "wardflow_stage_ready",
}
_AGGREGATION = re.compile(
    r"\b(sum|max|min|avg|count)\s+(?:by|without)\b|\b(sum|max|min|avg|count)\s*\("
)
_VARIABLE_USE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    [source] = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    uid: str = source["uid"]
    return uid


def content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


# --- the helpers can fail -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("sum by (stage) (rate(wardflow_events_in_total[$__rate_interval]))", {"events_in_total"}),
        ('wardflow_beds{ward=~"wardflow_not_a_metric", status!="x"}', {"beds"}),
        (
            "histogram_quantile(0.9, sum by (le) (rate(wardflow_bed_wait_seconds_bucket[1h])))",
            {"bed_wait_seconds_bucket"},
        ),
        ("wardflow_x_sum / wardflow_x_count", {"x_sum", "x_count"}),
        ("wardflow:events:rate5m + $wardflow_variable", set()),
        (
            "time() - max by (source) (wardflow_source_last_event_timestamp_seconds)",
            {"source_last_event_timestamp_seconds"},
        ),
    ],
)
def test_queried_series_are_names_outside_strings(expr: str, expected: set[str]) -> None:
    assert queried_series(expr) == {f"wardflow_{name}" for name in expected}


def test_queried_labels_are_grouping_and_matcher_labels() -> None:
    expr = 'sum by (ward, status) (wardflow_beds{ward=~"$ward", level_of_care!="icu"}) > on() 0'
    assert queried_labels(expr) == {"ward", "status", "level_of_care"}
    assert queried_labels("sum without (le) (rate(wardflow_x_bucket[5m]))") == {"le"}


@pytest.fixture(scope="module")
def exposed() -> dict[str, Any]:
    registry = CollectorRegistry()
    Counter("wardflow_c_total", "c", ["stage"], registry=registry).labels("cleaning").inc()
    Gauge("wardflow_g", "g", ["ward"], registry=registry)
    Histogram("wardflow_h_seconds", "h", registry=registry).observe(1.0)
    return parse_exposition(generate_latest(registry).decode())


@pytest.mark.parametrize(
    ("series", "family"),
    [
        ("wardflow_c_total", "wardflow_c"),
        ("wardflow_c", None),  # a counter is queried with _total
        ("wardflow_g", "wardflow_g"),
        ("wardflow_g_total", None),
        ("wardflow_g_count", None),
        ("wardflow_h_seconds_bucket", "wardflow_h_seconds"),
        ("wardflow_h_seconds_sum", "wardflow_h_seconds"),
        ("wardflow_h_seconds_count", "wardflow_h_seconds"),
        ("wardflow_h_seconds", None),  # a histogram has no series of its bare name
        ("wardflow_missing", None),
    ],
)
def test_family_of_maps_series_to_the_family_of_the_right_type(
    exposed: dict[str, Any], series: str, family: str | None
) -> None:
    found = family_of(series, exposed)
    assert (found.name if found else None) == family


def test_parse_exposition_keeps_families_without_samples(exposed: dict[str, Any]) -> None:
    assert not exposed["wardflow_g"].has_samples
    assert exposed["wardflow_c"].has_samples
    assert exposed["wardflow_c"].sample_labels == {"stage"}
    assert exposed["wardflow_h_seconds"].sample_labels == set(), "le is not a queried label"


# --- the dashboard -------------------------------------------------------------------------


def test_dashboard_has_a_stable_uid_and_title(dashboard: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["time"]["from"] and dashboard["time"]["to"]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned: Grafana assigns ids"


def test_panel_ids_are_unique_integers(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


def test_every_panel_queries_the_provisioned_prometheus(
    dashboard: dict[str, Any], datasource_uid: str
) -> None:
    expected = {"type": "prometheus", "uid": datasource_uid}
    panels = content_panels(dashboard)
    assert len(panels) >= 9
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel["type"] in PANEL_TYPES, title
        assert panel["datasource"] == expected, title
        targets = panel["targets"]
        assert targets, f"{title} has no targets"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in targets:
            assert target["datasource"] == expected, title
            assert target["expr"].strip(), title
            assert queried_series(target["expr"]), f"{title}: a target queries no wardflow metric"


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = taken.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"


def test_variables_are_defined_and_use_the_provisioned_prometheus(
    dashboard: dict[str, Any], datasource_uid: str
) -> None:
    variables = dashboard["templating"]["list"]
    defined = {v["name"] for v in variables}
    for variable in variables:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == datasource_uid
    for query in queries(dashboard):
        for braced, bare in _VARIABLE_USE.findall(query.expr):
            name = braced or bare
            assert name.startswith("__") or name in defined, f"{query.where}: ${name}"


def test_dashboard_shows_what_issue_7_asks_for(dashboard: dict[str, Any]) -> None:
    queried = {series for query in queries(dashboard) for series in query.series}
    missing = REQUIRED_SERIES - queried
    assert not missing, missing


def aggregations(expr: str) -> set[str]:
    return {a or b for a, b in _AGGREGATION.findall(expr)}


def test_aggregations_are_read_from_the_expression() -> None:
    assert aggregations("max by (ward) (wardflow_beds) / sum(rate(x[5m]))") == {"max", "sum"}
    assert aggregations("wardflow_beds") == set()


def test_replicas_of_shared_and_per_replica_gauges_are_combined_correctly(
    dashboard: dict[str, Any],
) -> None:
    for query in queries(dashboard):
        if query.where.startswith("variable"):
            continue
        used = aggregations(query.expr)
        if query.series & SHARED_STATE_GAUGES:
            assert used == {"max"}, f"{query.where}: {query.expr}"
        if query.series & PER_REPLICA_GAUGES:
            assert used == {"sum"}, f"{query.where}: {query.expr}"


# --- provisioning --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grafana_service() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    return service


def mounted_at(service: dict[str, Any], host_dir: Path) -> PurePosixPath:
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if (REPO / source).resolve() == host_dir.resolve():
            target, _, mode = rest.partition(":")
            assert mode == "ro", f"{volume} should be read-only"
            return PurePosixPath(target)
    raise AssertionError(f"{host_dir} is not mounted into grafana")


def test_provider_loads_the_dashboard_folder_compose_mounts(
    grafana_service: dict[str, Any],
) -> None:
    config = yaml.safe_load(PROVIDER.read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert PurePosixPath(provider["options"]["path"]) == mounted_at(grafana_service, DASHBOARDS)
    assert DASHBOARD.parent == DASHBOARDS
    # The provider file itself is under the provisioning mount, where Grafana looks for providers.
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    assert mounted_at(grafana_service, provisioning) == PurePosixPath("/etc/grafana/provisioning")
    assert PROVIDER.parent == provisioning / "dashboards"


def test_dashboard_uids_are_unique_in_the_folder() -> None:
    uids = [load_dashboard(path)["uid"] for path in sorted(DASHBOARDS.glob("*.json"))]
    assert uids and len(uids) == len(set(uids))


def test_home_dashboard_is_the_provisioned_file(grafana_service: dict[str, Any]) -> None:
    home = PurePosixPath(
        grafana_service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    folder = mounted_at(grafana_service, DASHBOARDS)
    assert home.parent == folder
    assert (DASHBOARDS / home.name).is_file()
