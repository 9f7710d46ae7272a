"""Reading the Grafana dashboard's queries, and matching them against a /metrics exposition.

The dashboard is the JSON in deploy/grafana/dashboards/. A query names series, not families: a
counter family `wardflow_x` is queried as `wardflow_x_total`, a histogram `wardflow_h_seconds` as
`wardflow_h_seconds_bucket`, `_sum` or `_count`, a gauge by its own name. These helpers make that
mapping explicit, so a query of a histogram by its bare name or of a gauge with `_total` is caught.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS / "wardflow.json"
PROVIDER = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "wardflow.yml"

# PromQL string literals (label values, regexes): whatever is inside is not a metric name.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SERIES = re.compile(r"(?<![\w:$])wardflow_[a-z0-9_]+(?![\w:])")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")

# Series suffix -> the family types whose samples carry it.
_SUFFIXES: dict[str, frozenset[str]] = {
    "_total": frozenset({"counter"}),
    "_bucket": frozenset({"histogram", "gaugehistogram"}),
    "_sum": frozenset({"histogram", "summary"}),
    "_count": frozenset({"histogram", "summary"}),
}
# Types whose samples carry the family's own name.
_BARE = frozenset({"gauge", "untyped", "unknown", "summary"})


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard, and where it is."""

    where: str
    expr: str

    @property
    def series(self) -> frozenset[str]:
        return queried_series(self.expr)

    @property
    def labels(self) -> frozenset[str]:
        return queried_labels(self.expr)


@dataclass(frozen=True)
class Family:
    """A metric family as a /metrics page exposes it."""

    name: str
    type: str
    sample_labels: frozenset[str]
    has_samples: bool


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every PromQL expression: each panel target's `expr` and each query variable's query."""
    found = [
        Query(f"panel {panel['id']} {panel.get('title')!r} target {target.get('refId')}", expr)
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
        if (expr := target.get("expr"))
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if text:
            found.append(Query(f"variable {variable['name']!r}", text))
    return found


def queried_series(expr: str) -> frozenset[str]:
    """The wardflow series names an expression selects (string literals are not names)."""
    return frozenset(_SERIES.findall(_STRING.sub('""', expr)))


def queried_labels(expr: str) -> frozenset[str]:
    """Label names an expression groups by or matches on."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for group in _GROUPING.findall(text):
        labels.update(name.strip() for name in group.split(",") if name.strip())
    for matchers in _MATCHERS.findall(text):
        labels.update(_LABEL.findall(matchers))
    return frozenset(labels)


def parse_exposition(text: str) -> dict[str, Family]:
    """The families of one /metrics page (prometheus_client's text parser), by family name."""
    families: dict[str, Family] = {}
    for family in text_string_to_metric_families(text):
        labels = frozenset(label for sample in family.samples for label in sample.labels)
        families[family.name] = Family(
            family.name, family.type, labels - {"le", "quantile"}, bool(family.samples)
        )
    return families


def family_of(series: str, families: dict[str, Family]) -> Family | None:
    """The exposed family whose samples a queried series name would select, if any."""
    exact = families.get(series)
    if exact is not None and exact.type in _BARE:
        return exact
    for suffix, types in _SUFFIXES.items():
        if series.endswith(suffix):
            base = families.get(series.removesuffix(suffix))
            if base is not None and base.type in types:
                return base
    return None


def merge(pages: list[dict[str, Family]]) -> dict[str, Family]:
    """Families of several services' pages: the same family may be exposed by many."""
    merged: dict[str, Family] = {}
    for page in pages:
        for name, family in page.items():
            seen = merged.get(name)
            if seen is None:
                merged[name] = family
            else:
                merged[name] = Family(
                    name,
                    seen.type,
                    seen.sample_labels | family.sample_labels,
                    seen.has_samples or family.has_samples,
                )
    return merged
