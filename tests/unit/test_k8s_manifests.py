"""deploy/k8s is valid Kubernetes and agrees with the code, checked offline (no cluster).

Every manifest is validated against the Kubernetes JSON schemas that kubernetes-validate ships
(strict: unknown fields are errors), for the Kubernetes version pinned below. Then the project's
own rules: one Deployment and one Service per service, probes on endpoints the service has,
resources, a non-root read-only container, a pinned image, and ports and environment variables
that the service's settings really read.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.unit.test_deploy import CHECKED_PREFIXES, SETTINGS, accepted_env_names, unknown_variables

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
README = REPO / "README.md"
# The oldest Kubernetes the manifests must apply to (kubernetes-validate picks its schemas).
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "wardflow"
SERVICE_NAMES = ("ingest", "cleaning", "fusion", "diagnosis", "scheduler")
# Created by hand (kubectl create secret), never committed; README.md says how.
SECRETS = {"wardflow-ingest", "wardflow-sources", "wardflow-redis"}
# What each service must take from a ConfigMap or Secret rather than a literal in its manifest.
FROM_CONFIG = {
    **{name: {"KAFKA_BOOTSTRAP_SERVERS"} for name in SERVICE_NAMES},
    "scheduler": {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "WARDFLOW_REDIS_CLUSTER"},
}
FROM_SECRET = {"ingest": {"WARDFLOW_PSEUDONYM_KEY"}}
# No service writes to disk but /tmp: fusion keeps its state in a changelog topic.
WRITABLE_SETTING: dict[str, str] = {}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for name in kustomization["resources"] for doc in load_documents(K8S / name)]


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def manifest_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, Any]]
) -> tuple[dict[str, str], dict[str, str]]:
    """(variables with a value, from literals and ConfigMaps; variable -> where it comes from).

    Secret values are not known offline: they appear in the second mapping only.
    """
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            for key, value in config_maps[name]["data"].items():
                values[key] = str(value)
                origin[key] = f"configmap/{name}"
        else:
            assert source["secretRef"]["name"] in SECRETS
    for variable in container.get("env", []):
        name = variable["name"]
        if "value" in variable:
            values[name] = str(variable["value"])
            origin[name] = "literal"
        elif "configMapKeyRef" in variable["valueFrom"]:
            ref = variable["valueFrom"]["configMapKeyRef"]
            values[name] = str(config_maps[ref["name"]]["data"][ref["key"]])
            origin[name] = f"configmap/{ref['name']}"
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            values.pop(name, None)
            origin[name] = f"secret/{ref['name']}"
    return values, origin


def build_settings(
    name: str,
    resources: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    kind: str = "Deployment",
) -> BaseSettings:
    """The settings the container would build from its manifest's environment (secrets unset)."""
    for variable in list(os.environ):
        if variable.upper().startswith(CHECKED_PREFIXES):
            monkeypatch.delenv(variable)
    container = container_of(by_kind(resources, kind)[name])
    values, _ = manifest_env(container, by_kind(resources, "ConfigMap"))
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    return SETTINGS["topics" if kind == "Job" else name]()


def probe_target(probe: dict[str, Any], container: dict[str, Any]) -> tuple[str, int]:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = probe["httpGet"]["port"]
    return probe["httpGet"]["path"], ports[port] if isinstance(port, str) else port


# --- Kubernetes schemas --------------------------------------------------------------------


def test_kustomization_lists_every_manifest(kustomization: dict[str, Any]) -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert kustomization["namespace"] == NAMESPACE


def test_every_manifest_validates_against_the_kubernetes_schemas(
    resources: list[dict[str, Any]],
) -> None:
    kinds = {r["kind"] for r in resources}
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "Job"} <= kinds
    for resource in resources:
        # Raises (and fails the test) on an invalid resource or a kind it has no schema for.
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), "two"),
        (("spec", "template", "spec", "containers", 0, "readinessprobe"), {}),  # misspelt
        (("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "9102"),
    ],
)
def test_the_schema_check_rejects_a_broken_deployment(
    resources: list[dict[str, Any]], path: tuple[Any, ...], value: Any
) -> None:
    broken = copy.deepcopy(by_kind(resources, "Deployment")["cleaning"])
    node = broken
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_everything_is_in_the_wardflow_namespace(resources: list[dict[str, Any]]) -> None:
    assert set(by_kind(resources, "Namespace")) == {NAMESPACE}
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == NAMESPACE, resource["metadata"]["name"]


# --- one Deployment and one Service per service ----------------------------------------------


def test_one_deployment_and_one_service_per_service(resources: list[dict[str, Any]]) -> None:
    assert set(by_kind(resources, "Deployment")) == set(SERVICE_NAMES)
    assert set(by_kind(resources, "Service")) == set(SERVICE_NAMES)
    for name in SERVICE_NAMES:
        assert (K8S / f"{name}.yaml").is_file(), "one manifest file per service"
        kinds = sorted(r["kind"] for r in load_documents(K8S / f"{name}.yaml"))
        assert kinds == ["Deployment", "Service"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_deployment_runs_the_service_from_the_pinned_image(
    resources: list[dict[str, Any]], kustomization: dict[str, Any], name: str
) -> None:
    container = container_of(by_kind(resources, "Deployment")[name])
    assert container["args"] == ["service", name]
    image, _, tag = container["image"].rpartition(":")
    assert image and tag and tag != "latest" and "/" not in tag
    [override] = kustomization["images"]
    assert override["name"] == image
    assert override.get("newTag", tag) != "latest"


def test_every_workload_uses_the_same_image(resources: list[dict[str, Any]]) -> None:
    workloads = [*by_kind(resources, "Deployment").values(), *by_kind(resources, "Job").values()]
    assert len({container_of(w)["image"] for w in workloads}) == 1


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_non_root_without_privileges(resources: list[dict[str, Any]], kind: str) -> None:
    for name, workload in by_kind(resources, kind).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, "the Dockerfile's USER"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert not context["capabilities"].get("add"), name
            assert context["readOnlyRootFilesystem"] is True, name


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_containers_have_requests_and_limits(resources: list[dict[str, Any]], kind: str) -> None:
    for name, workload in by_kind(resources, kind).items():
        resources_ = container_of(workload)["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources_[bound]), f"{name} {bound}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_probes_hit_endpoints_the_service_has(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, resources, monkeypatch)
    endpoints = {("/metrics", settings.metrics_port)}  # type: ignore[attr-defined]
    if hasattr(settings, "http_port"):  # ingest and the scheduler answer /healthz on their API
        endpoints.add(("/healthz", settings.http_port))
    container = container_of(by_kind(resources, "Deployment")[name])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe_target(container[probe], container) in endpoints, f"{name} {probe}"


def test_scheduler_is_ready_on_redis_and_alive_on_metrics(
    resources: list[dict[str, Any]],
) -> None:
    container = container_of(by_kind(resources, "Deployment")["scheduler"])
    assert probe_target(container["readinessProbe"], container) == ("/healthz", 8081)
    assert probe_target(container["livenessProbe"], container)[0] == "/metrics"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_ports_are_the_settings_defaults(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, resources, monkeypatch)
    fields = SETTINGS[name].model_fields
    container = container_of(by_kind(resources, "Deployment")[name])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expected = {"metrics": "metrics_port", "http": "http_port", "mllp": "mllp_port"}
    assert set(ports) == {port for port, field in expected.items() if field in fields}
    for port_name, number in ports.items():
        field = expected[port_name]
        assert number == fields[field].default == getattr(settings, field), f"{name} {port_name}"
        host = field.replace("_port", "_host")
        assert getattr(settings, host) == "0.0.0.0", f"{name} must listen beyond loopback"
    annotations = by_kind(resources, "Deployment")[name]["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/port"] == str(ports["metrics"])


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_selects_the_deployment_and_exposes_its_ports(
    resources: list[dict[str, Any]], name: str
) -> None:
    service = by_kind(resources, "Service")[name]
    deployment = by_kind(resources, "Deployment")[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}
    service_ports = {p["targetPort"]: p["port"] for p in service["spec"]["ports"]}
    assert service_ports == container_ports


# --- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_environment_names_are_settings_fields(resources: list[dict[str, Any]], name: str) -> None:
    container = container_of(by_kind(resources, "Deployment")[name])
    _, origin = manifest_env(container, by_kind(resources, "ConfigMap"))
    assert unknown_variables(dict.fromkeys(origin, ""), SETTINGS[name]) == []


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_settings_validate_with_the_manifest_environment(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, resources, monkeypatch)
    container = container_of(by_kind(resources, "Deployment")[name])
    values, _ = manifest_env(container, by_kind(resources, "ConfigMap"))
    accepted = accepted_env_names(SETTINGS[name])
    assert {accepted[v.upper()] for v in values} <= settings.model_fields_set


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_addresses_and_keys_come_from_config_maps_and_secrets(
    resources: list[dict[str, Any]], name: str
) -> None:
    container = container_of(by_kind(resources, "Deployment")[name])
    _, origin = manifest_env(container, by_kind(resources, "ConfigMap"))
    for variable in FROM_CONFIG[name]:
        assert origin.get(variable, "").startswith("configmap/"), f"{name} {variable}"
    for variable in FROM_SECRET.get(name, set()):
        assert origin.get(variable, "").startswith("secret/"), f"{name} {variable}"
    secret_like = {v for v in origin if re.search(r"KEY|PASSWORD|TOKEN", v)}
    assert all(origin[v].startswith("secret/") for v in secret_like), "no literal secrets"


def references(node: Any, kind: str) -> set[str]:
    """Names under every `kind` key (configMapRef, secretRef, secretKeyRef, secret) in a tree."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind:
                found.add(value.get("name") or value["secretName"])
            found |= references(value, kind)
    elif isinstance(node, list):
        for item in node:
            found |= references(item, kind)
    return found


def test_referenced_config_maps_exist_and_secrets_are_documented(
    resources: list[dict[str, Any]],
) -> None:
    workloads = [r for r in resources if r["kind"] in ("Deployment", "Job")]
    used = references(workloads, "configMapRef") | references(workloads, "configMapKeyRef")
    assert used and used <= set(by_kind(resources, "ConfigMap"))
    secrets = set().union(
        *(references(workloads, kind) for kind in ("secretRef", "secretKeyRef", "secret"))
    )
    assert secrets == SECRETS
    assert not by_kind(resources, "Secret"), "secrets are created by hand, never committed"
    readme = README.read_text()
    for secret in SECRETS:
        assert f"create secret generic {secret}" in readme, f"README.md: how to create {secret}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_written_paths_are_on_writable_volumes(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(name, resources, monkeypatch)
    deployment = by_kind(resources, "Deployment")[name]
    container = container_of(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {PurePosixPath(m["mountPath"]): volumes[m["name"]] for m in container["volumeMounts"]}
    writable = {path for path, volume in mounts.items() if "emptyDir" in volume}
    assert PurePosixPath("/tmp") in writable
    if name in WRITABLE_SETTING:
        path = PurePosixPath("/app") / getattr(settings, WRITABLE_SETTING[name])  # WORKDIR /app
        assert any(path.is_relative_to(w) for w in writable), f"{path} is read-only"
    sources = getattr(settings, "sources_file", "")
    if sources:
        path = PurePosixPath(sources)
        volume = mounts[path.parent]
        assert path.name in {item["path"] for item in volume["secret"]["items"]}


def test_fusion_partitions_match_the_topics_job(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fusion = build_settings("fusion", resources, monkeypatch)
    args = container_of(by_kind(resources, "Job")["topics"])["args"]
    assert args[:3] == ["topics", "create", "--partitions"]
    assert fusion.partitions == int(args[3])  # type: ignore[attr-defined]


def test_topics_job_reads_only_shared_settings(
    resources: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = container_of(by_kind(resources, "Job")["topics"])
    _, origin = manifest_env(container, by_kind(resources, "ConfigMap"))
    assert unknown_variables(dict.fromkeys(origin, ""), SETTINGS["topics"]) == []
    settings = build_settings("topics", resources, monkeypatch, kind="Job")
    assert settings.kafka_replication_factor >= 1  # type: ignore[attr-defined]
