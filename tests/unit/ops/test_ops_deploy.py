"""The deploy files: YAML parses, manifests pass a schema check, configs load with the real readers.

No container engine or cluster runs here, so this checks what can be checked without one.
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from comity.core.errors import ConfigError
from comity.gateway.config import load_gateway_config
from comity.nodes.config import load_node_config

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the deploy files")

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
COMPOSE = DEPLOY / "compose" / "compose.yaml"
COMPOSE_REPLICAS = DEPLOY / "compose" / "compose.replicas.yaml"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (``!override``, ``!reset``) read as their plain values."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def _docs(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [d for d in yaml.load_all(text, Loader=_ComposeLoader) if d is not None]


def _k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in K8S for doc in _docs(path)]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _k8s_docs() if d["kind"] == kind]


# ------------------------------------------------------------------ example configs


@pytest.mark.parametrize(
    ("path", "loader"),
    [
        (DEPLOY / "config" / "gateway.toml", load_gateway_config),
        (DEPLOY / "config" / "node.toml", load_node_config),
        (DEPLOY / "compose" / "config" / "gateway.toml", load_gateway_config),
        (DEPLOY / "compose" / "config" / "gateway-replicas.toml", load_gateway_config),
        (DEPLOY / "compose" / "config" / "us-node.toml", load_node_config),
        (DEPLOY / "compose" / "config" / "ca-node.toml", load_node_config),
    ],
    ids=lambda v: str(v.relative_to(DEPLOY)) if isinstance(v, Path) else "",
)
def test_example_configs_load_with_the_readers(
    path: Path, loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL", "COMITY_NODE_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = loader(path)
    assert config.source == path


def test_configmap_configs_load_with_the_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL", "COMITY_NODE_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    loaded = 0
    for cm in _kind("ConfigMap"):
        for name, text in cm["data"].items():
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            loader = load_gateway_config if "gateway" in name else load_node_config
            config = loader(path)
            assert config.health_listen, f"{name}: probes need health_listen"
            loaded += 1
    assert loaded >= 2


# ------------------------------------------------------------------ Kubernetes


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 4
    for path in files:
        assert _docs(path), f"{path} is empty"


def test_manifests_pass_the_kubernetes_schema() -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)"
    )
    for doc in _k8s_docs():
        validate.validate(doc, "1.30.0", strict=True)


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in _kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield pod, container


def test_deployments_probe_over_grpc_and_limit_resources() -> None:
    assert {d["metadata"]["name"] for d in _kind("Deployment")} == {"comity-ca-node", "comity-gateway"}
    for pod, container in _containers():
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert "grpc" in container[probe], (container["name"], probe)
        assert container["readinessProbe"]["grpc"]["service"].startswith("comity.v1.")
        assert set(container["resources"]) == {"requests", "limits"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]


def test_keys_come_from_secrets_and_config_from_configmaps() -> None:
    config_maps = {c["metadata"]["name"] for c in _kind("ConfigMap")}
    for pod, container in _containers():
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "secret" in volumes[mounts["/etc/comity/keys"]]
        assert "secret" in volumes[mounts["/etc/comity/tls"]]
        config = volumes[mounts[next(p for p in mounts if p.endswith(".toml"))]]
        assert config["configMap"]["name"] in config_maps
        assert any("secretRef" in source for source in container["envFrom"])
        # Private keys never sit in a ConfigMap.
    for cm in _kind("ConfigMap"):
        assert "PRIVATE KEY" not in str(cm["data"])


def test_each_deployment_has_a_service_and_a_network_policy() -> None:
    for deployment in _kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selected = [
            p
            for p in _kind("NetworkPolicy")
            if p["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(selected) == 1
        assert set(selected[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        services = [s for s in _kind("Service") if s["spec"]["selector"].items() <= labels.items()]
        assert len(services) == 1


def _gateway_config_map(tmp_path: Path) -> Any:
    (cm,) = [c for c in _kind("ConfigMap") if c["metadata"]["name"] == "comity-gateway-config"]
    path = tmp_path / "gateway.toml"
    path.write_text(cm["data"]["gateway.toml"], encoding="utf-8")
    return load_gateway_config(path)


def test_the_gateway_runs_replicated_with_rolling_updates_and_a_disruption_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL"):
        monkeypatch.delenv(name, raising=False)
    (gateway,) = [d for d in _kind("Deployment") if d["metadata"]["name"] == "comity-gateway"]
    spec = gateway["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert (
        spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    )  # a new pod is ready before an old one goes
    labels = spec["template"]["metadata"]["labels"]
    (budget,) = [
        p
        for p in _kind("PodDisruptionBudget")
        if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert 1 <= budget["spec"]["minAvailable"] < spec["replicas"]
    config = _gateway_config_map(tmp_path)
    assert config.replicated
    assert config.audit_url.startswith("postgresql://") and config.replay_url.startswith("postgresql://")


def test_the_try_out_database_is_a_stateful_set_only_the_gateway_reaches() -> None:
    (database,) = _kind("StatefulSet")
    spec = database["spec"]
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    labels = spec["template"]["metadata"]["labels"]
    assert any(s["spec"]["selector"].items() <= labels.items() for s in _kind("Service"))
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert set(container["resources"]) == {"requests", "limits"}
    (policy,) = [
        p for p in _kind("NetworkPolicy") if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    sources = [f["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"] for f in rule["from"]]
    assert sources == [{"app.kubernetes.io/name": "comity-gateway"}]
    (gateway_policy,) = [p for p in _kind("NetworkPolicy") if p["metadata"]["name"] == "comity-gateway"]
    reached = [
        t.get("podSelector", {}).get("matchLabels")
        for rule in gateway_policy["spec"]["egress"]
        for t in rule["to"]
    ]
    assert labels.items() >= {"app.kubernetes.io/name": "comity-postgres"}.items()
    assert {"app.kubernetes.io/name": "comity-postgres"} in reached


def test_the_operator_cluster_replicates_synchronously() -> None:
    (cluster,) = _docs(DEPLOY / "k8s" / "operator" / "postgres-cluster.yaml")
    assert cluster["kind"] == "Cluster" and cluster["apiVersion"].startswith("postgresql.cnpg.io/")
    spec = cluster["spec"]
    assert spec["instances"] >= 2
    assert spec["postgresql"]["synchronous"]["number"] >= 1
    assert spec["postgresql"]["synchronous"]["dataDurability"] == "required"
    assert spec["postgresql"]["parameters"]["synchronous_commit"] in {"on", "remote_write", "remote_apply"}


# ------------------------------------------------------------------ compose


def test_compose_has_the_federation_and_healthchecks() -> None:
    (compose,) = _docs(COMPOSE)
    services = compose["services"]
    assert set(services) == {"postgres", "otel-collector", "us-node", "ca-node", "gateway"}
    for name in ("postgres", "us-node", "ca-node", "gateway"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("us-node", "ca-node", "gateway"):
        service = services[name]
        assert service["user"] == "10001:10001" and service["read_only"] is True
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        for secret in service["secrets"]:
            assert secret in compose["secrets"], (name, secret)
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./config/"):
                assert (COMPOSE.parent / source).is_file(), source
    collector = services["otel-collector"]["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / collector).is_file()


def test_the_compose_replicas_variant_runs_two_replicated_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL"):
        monkeypatch.delenv(name, raising=False)
    (base,) = _docs(COMPOSE)
    (override,) = _docs(COMPOSE_REPLICAS)
    assert set(override["services"]) <= set(base["services"])
    gateway = override["services"]["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    first, last = gateway["ports"][0].split(":")[0].split("-")
    assert int(last) - int(first) + 1 == 2  # a host port for each replica
    mounted = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    config = load_gateway_config(COMPOSE.parent / mounted["/etc/comity/gateway.toml"])
    assert config.replicated and config.audit_url.startswith("postgresql://")
    # Both replicas get the base's database URLs, the same database.
    environment = base["services"]["gateway"]["environment"]
    assert environment["COMITY_AUDIT_URL"] == environment["COMITY_REPLAY_URL"]


def test_collector_pipelines_use_defined_components() -> None:
    (config,) = _docs(DEPLOY / "compose" / "otel-collector.yaml")
    assert set(config["service"]["pipelines"]) == {"traces", "metrics"}
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")


# ------------------------------------------------------------------ systemd and Dockerfile


@pytest.mark.parametrize("unit", ["comity-node@.service", "comity-gateway.service"])
def test_systemd_units_have_the_expected_keys(unit: str) -> None:
    # strict=False: systemd allows a key twice (SystemCallFilter) and configparser would refuse it.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / unit, encoding="utf-8")
    assert parser.sections() == ["Unit", "Service", "Install"]
    service = parser["Service"]
    command = "node serve" if "node" in unit else "gateway serve"
    assert f"comity {command} --config /etc/comity/" in service["ExecStart"]
    assert service["User"] == "comity"
    assert service["Restart"] == "on-failure"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert service[key] == value, key
    assert "StateDirectory" in service and "EnvironmentFile" in service
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_dockerfile_builds_one_non_root_image_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \. ", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user is not None and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[\"comity-healthcheck\"\]", text, re.M)
    for source in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    # Everything the wheel is built from is copied in.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert f"COPY {package.split('/')[0]} " in text, package


# ------------------------------------------------------------------ the health probe


def _probe_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("comity_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_health_probe_exit_status_follows_the_server() -> None:
    probe = _probe_module()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        checker.set("comity.v1.DataNode", health_pb2.HealthCheckResponse.SERVING)
        assert probe.main([f"127.0.0.1:{port}", "--service", "comity.v1.DataNode"]) == 0
        checker.set("comity.v1.DataNode", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert probe.main([f"127.0.0.1:{port}", "--service", "comity.v1.DataNode"]) == 1
        assert probe.main([f"127.0.0.1:{port}", "--service", "comity.v1.Unknown"]) == 1
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    ("config", "unit", "instance"),
    [("node.toml", "comity-node@.service", "ca-node"), ("gateway.toml", "comity-gateway.service", "")],
)
def test_the_example_configs_write_only_inside_the_units_state_directory(
    config: str, unit: str, instance: str
) -> None:
    # ProtectSystem=strict makes everything read-only but the unit's StateDirectory: a database
    # path outside it would fail at the first write.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / unit, encoding="utf-8")
    state = "/var/lib/" + parser["Service"]["StateDirectory"].replace("%i", instance)
    text = (DEPLOY / "config" / config).read_text(encoding="utf-8")
    written = re.findall(r'^(?:url|state)\s*=\s*"(?:sqlite:///)?(/[^"]+)"', text, re.M)
    assert written, config
    for path in written:
        assert path.startswith(state + "/"), f"{config}: {path} is outside {state}"


def test_the_gateways_bound_on_a_streamed_answer_is_read_from_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL"):
        monkeypatch.delenv(name, raising=False)
    sample = DEPLOY / "config" / "gateway.toml"
    assert load_gateway_config(sample).max_stream_records == 10_000
    text = sample.read_text().replace("max_stream_records = 10000", "max_stream_records = 250")
    edited = tmp_path / "gateway.toml"
    edited.write_text(text)
    assert load_gateway_config(edited).max_stream_records == 250
    edited.write_text(text.replace("max_stream_records = 250", "max_stream_records = 0"))
    with pytest.raises(ConfigError, match="max_stream_records"):
        load_gateway_config(edited)
