"""docker-compose.yml and deploy/ agree with the code: commands, settings, ports, health, secrets.

No Docker engine is needed: the files are parsed and checked against the settings classes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

import services.common.metrics
import services.common.stage
import services.diagnosis.app
import services.ingest.gateway
import services.scheduler.metrics
from services.cleaning.config import CleaningSettings
from services.common.settings import ServiceSettings
from services.diagnosis.config import DiagnosisSettings
from services.fusion.config import FusionSettings
from services.ingest.config import IngestSettings
from services.scheduler.config import SchedulerSettings
from services.simulator.config import SimulatorSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

SERVICE_NAMES = ("ingest", "cleaning", "fusion", "diagnosis", "scheduler")
COMMANDS: dict[str, list[str]] = {
    **{name: ["service", name] for name in SERVICE_NAMES},
    "simulator": ["simulate"],
}
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "cleaning": CleaningSettings,
    "fusion": FusionSettings,
    "diagnosis": DiagnosisSettings,
    "scheduler": SchedulerSettings,
    "simulator": SimulatorSettings,
    "topics": ServiceSettings,
}
# Imported for their side effect: they register the metrics the alert rules may use.
METRIC_MODULES = (
    services.common.metrics,
    services.common.stage,
    services.diagnosis.app,
    services.ingest.gateway,
    services.scheduler.metrics,
)
CHECKED_PREFIXES = ("WARDFLOW", "KAFKA_", "REDIS_")
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?P<default>:?-[^}]*)?\}")


def accepted_env_names(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """Every environment name the settings class reads (upper case) -> the field it sets."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in settings_cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            choices: list[Any] = [f"{prefix}{field_name}"]
        elif isinstance(alias, AliasChoices):
            choices = list(alias.choices)
        else:
            choices = [alias]
        for choice in choices:
            name = choice.path[0] if isinstance(choice, AliasPath) else choice
            names[str(name).upper()] = field_name
    return names


def unknown_variables(env: dict[str, str], settings_cls: type[BaseSettings]) -> list[str]:
    """Variables with a wardflow, Kafka or Redis prefix that the settings class would ignore."""
    accepted = accepted_env_names(settings_cls)
    return sorted(
        name
        for name in env
        if name.upper().startswith(CHECKED_PREFIXES) and name.upper() not in accepted
    )


def interpolate(value: str) -> str:
    """Compose interpolation with the host environment empty: `${VAR:-default}` -> default."""

    def replace(match: re.Match[str]) -> str:
        if match["default"] is None:
            pytest.fail(f"${{{match['name']}}} has no default: compose would need it from the host")
        return match["default"].lstrip(":")[1:]

    return _VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value)) for name, value in raw.items()}


def build_settings(
    name: str, compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """The service's settings exactly as its container would build them (and nothing else)."""
    for variable in list(os.environ):
        if variable.upper().startswith(CHECKED_PREFIXES):
            monkeypatch.delenv(variable)
    env = environment(compose["services"][name])
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return SETTINGS[name]()


def uses_wardflow_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    return dockerfile.endswith("deploy/Dockerfile") or str(service.get("image", "")).startswith(
        "wardflow:"
    )


def healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    urls = re.findall(r"https?://[^\s'\"]+", text)
    assert len(urls) == 1, f"expected one URL in the healthcheck, got {urls}"
    return urls[0]


def prometheus_targets() -> dict[str, list[str]]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def registered_metric_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def dockerfile_final_stage() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


# --- the helpers themselves can fail --------------------------------------------------------


def test_accepted_env_names_follow_prefix_and_aliases() -> None:
    ingest = accepted_env_names(IngestSettings)
    assert ingest["WARDFLOW_METRICS_PORT"] == "metrics_port"
    assert ingest["KAFKA_BOOTSTRAP_SERVERS"] == "kafka_bootstrap_servers"
    assert "METRICS_PORT" not in ingest
    assert "REDIS_URL" not in ingest
    assert accepted_env_names(SchedulerSettings)["REDIS_URL"] == "redis_url"
    assert accepted_env_names(SimulatorSettings)["WARDFLOW_SIMULATOR_API_KEY"] == "api_key"


def test_unknown_variables_reports_a_misspelt_name() -> None:
    env = {"WARDFLOW_METRICS_PORT": "9101", "WARDFLOW_METRIC_PORT": "9101", "REDIS_URL": "x"}
    assert unknown_variables(env, IngestSettings) == ["REDIS_URL", "WARDFLOW_METRIC_PORT"]
    assert unknown_variables({"wardflow_metrics_port": "1"}, IngestSettings) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${KEY:-dev}", "dev"),
        ("${KEY-dev}", "dev"),
        ('{"a": "${K:-x}"}', '{"a": "x"}'),
        ("$$", "$"),
    ],
)
def test_interpolate_uses_the_default(raw: str, expected: str) -> None:
    assert interpolate(raw) == expected


# --- compose -------------------------------------------------------------------------------


def test_every_service_and_the_simulator_is_in_compose(compose: dict[str, Any]) -> None:
    missing = {*SERVICE_NAMES, "simulator"} - set(compose["services"])
    assert not missing


def test_every_wardflow_container_has_a_known_settings_class(compose: dict[str, Any]) -> None:
    wardflow = {name for name, svc in compose["services"].items() if uses_wardflow_image(svc)}
    assert wardflow == set(SETTINGS)


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "simulator"])
def test_command_is_a_wardflow_subcommand(compose: dict[str, Any], name: str) -> None:
    command = compose["services"][name]["command"]
    assert command == COMMANDS[name]
    if command[0] == "service":
        assert command[1] in SERVICE_NAMES


def test_topics_job_creates_topics_once(compose: dict[str, Any]) -> None:
    topics = compose["services"]["topics"]
    assert topics["command"][:3] == ["topics", "create", "--partitions"]
    assert int(topics["command"][3]) >= 1
    assert topics.get("restart") == "no"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_environment_names_are_settings_fields(compose: dict[str, Any], name: str) -> None:
    env = environment(compose["services"][name])
    assert env, f"{name} has no environment"
    assert unknown_variables(env, SETTINGS[name]) == []


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_settings_validate_with_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, compose, monkeypatch)
    accepted = accepted_env_names(SETTINGS[name])
    given = {accepted[v.upper()] for v in environment(compose["services"][name])}
    assert given <= settings.model_fields_set, "a variable was given but not read"


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "topics"])
def test_services_reach_kafka_inside_the_network(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, compose, monkeypatch)
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for server in settings.kafka_bootstrap_servers.split(","):  # type: ignore[attr-defined]
        assert f"://{server}" in advertised


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_metrics_port_matches_a_prometheus_target(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, compose, monkeypatch)
    assert settings.metrics_host == "0.0.0.0"  # type: ignore[attr-defined]
    assert f"{name}:{settings.metrics_port}" in prometheus_targets()[name]  # type: ignore[attr-defined]


def test_every_prometheus_target_is_a_compose_service_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for job, targets in prometheus_targets().items():
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                continue  # Prometheus itself
            assert host in SERVICE_NAMES, f"job {job} scrapes unknown {host}"
            settings = build_settings(host, compose, monkeypatch)
            assert int(port) == settings.metrics_port  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_healthcheck_probes_the_service_own_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, compose, monkeypatch)
    url = urlsplit(healthcheck_url(compose["services"][name]))
    probes = {("/metrics", settings.metrics_port)}  # type: ignore[attr-defined]
    if hasattr(settings, "http_port"):
        assert settings.http_host == "0.0.0.0"  # type: ignore[attr-defined]
        probes = {("/healthz", settings.http_port)}
    assert (url.path, url.port) in probes


@pytest.mark.parametrize("name", [*SERVICE_NAMES, "simulator"])
def test_service_restarts_and_waits_for_what_it_needs(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["restart"] == "unless-stopped"
    stage = {"kafka": "service_healthy", "topics": "service_completed_successfully"}
    needs = {
        "scheduler": {**stage, "redis": "service_healthy"},
        "simulator": {"ingest": "service_healthy"},
    }
    expected = needs.get(name, stage)
    conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
    assert expected.items() <= conditions.items()


def test_health_conditions_point_at_services_with_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dep, spec in depends_on.items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in compose["services"][dep], f"{name} waits on {dep}"


def test_fusion_partitions_match_the_topics(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fusion = build_settings("fusion", compose, monkeypatch)
    assert fusion.partitions == int(compose["services"]["topics"]["command"][3])  # type: ignore[attr-defined]


def test_simulator_sends_to_ingest_with_a_key_ingest_accepts(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = build_settings("ingest", compose, monkeypatch)
    simulator = build_settings("simulator", compose, monkeypatch)
    url = urlsplit(simulator.ingest_url)  # type: ignore[attr-defined]
    assert (url.hostname, url.port) == ("ingest", ingest.http_port)  # type: ignore[attr-defined]
    key = simulator.api_key.get_secret_value()  # type: ignore[attr-defined]
    assert key
    assert key in {k.get_secret_value() for k in ingest.api_keys.values()}  # type: ignore[attr-defined]


def test_scheduler_uses_the_compose_redis(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = build_settings("scheduler", compose, monkeypatch)
    host = urlsplit(scheduler.redis_url).hostname  # type: ignore[attr-defined]
    assert host == "redis"
    assert compose["services"]["redis"]["image"] == "redis:7.4-alpine"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka["environment"]
    assert "healthcheck" in kafka
    for name, service in compose["services"].items():
        assert "zookeeper" not in name
        assert "zookeeper" not in str(service.get("image", ""))


def test_observability_images_and_mounts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["prometheus"]["image"] == "prom/prometheus:v3.5.0"
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert services["grafana"]["image"] == "grafana/grafana:12.1.1"
    mount = "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"
    assert mount in services["grafana"]["volumes"]


# --- deploy/ -------------------------------------------------------------------------------


def test_prometheus_rules_exist_and_use_real_metrics() -> None:
    patterns = yaml.safe_load(PROMETHEUS.read_text())["rule_files"]
    files = [path for pattern in patterns for path in sorted(PROMETHEUS.parent.glob(pattern))]
    assert files
    known = registered_metric_names()
    for path in files:
        rules = [
            rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
        ]
        assert rules
        for rule in rules:
            assert rule["alert"] and rule["labels"]["severity"] in {"warning", "critical"}
            used = set(re.findall(r"\bwardflow_\w+", rule["expr"]))
            assert used <= known, f"{rule['alert']} uses unknown {used - known}"


def test_grafana_datasource_is_the_compose_prometheus(compose: dict[str, Any]) -> None:
    [source] = yaml.safe_load(GRAFANA_DATASOURCE.read_text())["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus"
    assert (url.hostname, url.port) == ("prometheus", 9090)
    assert url.hostname in compose["services"]


def test_dockerfile_runs_wardflow_as_non_root() -> None:
    stage = dockerfile_final_stage()
    assert stage[0].split()[1] == "python:3.11-slim"
    [entrypoint] = [line for line in stage if line.upper().startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.split(None, 1)[1]) == ["wardflow"]
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_the_pinned_project_without_dev_extras() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    installs = [shlex.split(line) for line in text.splitlines() if "pip install" in line]
    assert any(words[-3:] == ["-c", "constraints.txt", "."] for words in installs)
    assert not any("dev" in word for words in installs for word in words if "[" in word)


def test_the_example_sources_file_is_valid() -> None:
    from schemas.care import CARE_EVENTS
    from services.ingest.sources import SourceRegistry, sources_from_toml

    text = (REPO / "deploy" / "ingest" / "sources.example.toml").read_text()
    registry = SourceRegistry(sources_from_toml(text, default_rate=100.0, default_burst=100.0))
    monitor = next(s for s in registry.sources if s.name == "bedside-gateway")
    assert monitor.may_send("VitalSignsObserved") and not monitor.may_send("PatientDischarged")
    assert not monitor.may_send("ParameterOverrideSet"), "a monitor gives no instructions"
    care = next(s for s in registry.sources if s.name == "ehr-care-plans")
    assert all(care.may_send(kind.__name__) for kind in CARE_EVENTS)
    assert not care.may_send("PatientAdmitted")
    assert registry.by_hl7_sender("EPIC", "MAINHOSP") is not None
    assert registry.by_hl7_sender("OTHER", "MAINHOSP") is None
    board = next(s for s in registry.sources if s.name == "bed-board")
    assert not board.kinds, "a board reads the scheduler's API and sends nothing"
    from services.common.auth import readers

    assert {r.name for r in readers(text, {}).holders} == {
        "housekeeping",
        "bed-board",
        "bed-manager",
    }
    from services.common.auth import api_clients

    writers = {c.name for c in api_clients(text, {}).holders if c.write}
    assert writers == {"bed-manager"}, "only the bed managers' tool may write"
