"""Offline validation of the Kubernetes manifests in deploy/k8s.

Every object is validated with `kubernetes-validate` (the OpenAPI-derived JSON schemas ship in
the wheel, so no cluster and no network) in strict mode (unknown fields are errors) against a
fixed Kubernetes version. The manifests use built-in kinds only (no CRDs), so an object
without a schema is an error too. On top of the schema, the tests check the shape the
platform needs: probes, resources, GPU scheduling, autoscaling, the NATS cluster.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.inference.service import IN_FLIGHT_METRIC

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
NAMESPACE = "dreamforge"

GRPC_PORTS = {"registry": 50051, "inference": 50052, "feedback": 50053, "trainer": 50054, "billing": 50055}
APP_SERVICES = {"gateway", *GRPC_PORTS}
GPU_SERVICES = {"inference", "trainer"}

Obj = dict[str, Any]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.y*ml") if p.name != "kustomization.yaml")


def _load_objects() -> list[tuple[Path, Obj]]:
    objects = []
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document:  # skip empty documents (e.g. a trailing ---)
                objects.append((path, document))
    return objects


OBJECTS = _load_objects()


def _objects(kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for _, obj in OBJECTS if obj["kind"] == kind}


def _one(kind: str, name: str) -> Obj:
    found = _objects(kind)
    assert name in found, f"no {kind} named {name!r} in deploy/k8s (have {sorted(found)})"
    return found[name]


def _validation_error(obj: Obj) -> str | None:
    """None when `obj` is valid, otherwise the reason."""
    utils = kubernetes_validate.utils
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except utils.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        return f"{path}: {exc.message}"
    except (utils.SchemaNotFoundError, utils.InvalidSchemaError) as exc:
        return exc.message
    return None


def _workloads() -> Iterator[Obj]:
    for kind in ("Deployment", "StatefulSet"):
        yield from _objects(kind).values()


# --- schema validation -----------------------------------------------------------------------


def test_there_are_manifests() -> None:
    assert len(_manifest_files()) >= 5
    assert len(OBJECTS) >= 20


@pytest.mark.parametrize(
    "obj",
    [obj for _, obj in OBJECTS],
    ids=[f"{path.name}:{obj.get('kind')}/{obj.get('metadata', {}).get('name')}" for path, obj in OBJECTS],
)
def test_object_is_valid(obj: Obj) -> None:
    error = _validation_error(obj)
    assert error is None, error


def test_every_object_validates() -> None:
    """The same check as above, as one summary (zero errors over the whole folder)."""
    errors = []
    for path, obj in OBJECTS:
        error = _validation_error(obj)
        if error:
            errors.append(f"{path.name} {obj['kind']}/{obj['metadata']['name']}: {error}")
    assert errors == []


def _a_deployment() -> Obj:
    return copy.deepcopy(_one("Deployment", "registry"))


def _wrong_replicas_type(obj: Obj) -> None:
    obj["spec"]["replicas"] = "three"


def _unknown_top_level_field(obj: Obj) -> None:
    obj["spec"]["replicaz"] = 2


def _unknown_container_field(obj: Obj) -> None:
    obj["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"grpc": {"port": 50051}}


def _wrong_probe_port_type(obj: Obj) -> None:
    obj["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"


def _missing_selector(obj: Obj) -> None:
    del obj["spec"]["selector"]


@pytest.mark.parametrize(
    "mutate",
    [
        _wrong_replicas_type,
        _unknown_top_level_field,
        _unknown_container_field,
        _wrong_probe_port_type,
        _missing_selector,
    ],
    ids=lambda f: f.__name__,
)
def test_broken_manifest_fails_validation(mutate) -> None:
    good = _a_deployment()
    assert _validation_error(good) is None  # control
    broken = copy.deepcopy(good)
    mutate(broken)
    assert _validation_error(broken) is not None, f"{mutate.__name__} passed validation"


def test_broken_manifest_file_fails_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file-level entry point (what `python -m kubernetes_validate --strict` runs) fails too."""
    broken = _a_deployment()
    broken["spec"]["replicas"] = "three"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    rc = kubernetes_validate.utils.validate_file(
        str(path), KUBERNETES_VERSION, strict=True, quiet=True, no_warn=False
    )
    assert rc != 0
    assert "ERROR" in capsys.readouterr().out


def test_no_custom_resources() -> None:
    builtin_groups = {"v1", "apps/v1", "autoscaling/v2", "policy/v1"}
    for path, obj in OBJECTS:
        assert obj["apiVersion"] in builtin_groups, f"{path.name}: {obj['apiVersion']} {obj['kind']}"


# --- kustomization ---------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "duplicate entries"
    assert set(resources) == {p.name for p in _manifest_files()}
    for image in kustomization.get("images", []):
        assert image["name"].split("/")[-1] in APP_SERVICES


# --- shape of the platform -------------------------------------------------------------------


def test_namespaced_objects_are_in_the_namespace() -> None:
    assert _one("Namespace", NAMESPACE)
    for path, obj in OBJECTS:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{path.name} {obj['kind']}"


def test_config_and_secret() -> None:
    config = _one("ConfigMap", "dreamforge-config")["data"]
    for key in (
        "DREAMFORGE_HOME",
        "DREAMFORGE_HOST",
        "DREAMFORGE_NATS_URL",
        "DREAMFORGE_REDIS_URL",
        "DREAMFORGE_REGISTRY_ADDR",
        "DREAMFORGE_INFERENCE_ADDR",
        "DREAMFORGE_FEEDBACK_ADDR",
        "DREAMFORGE_TRAINER_ADDR",
        "DREAMFORGE_BILLING_ADDR",
        "DREAMFORGE_INFERENCE_RUNTIME",
        "DREAMFORGE_TRITON_URL",
    ):
        assert key in config, key
    assert all(key.startswith("DREAMFORGE_") for key in config)
    assert config["DREAMFORGE_HOST"] == "0.0.0.0"
    for name, port in GRPC_PORTS.items():
        assert config[f"DREAMFORGE_{name.upper()}_ADDR"] == f"{name}:{port}"
    secret = _one("Secret", "dreamforge-secrets")
    assert "DREAMFORGE_DATABASE_URL" in secret["stringData"]
    assert "DREAMFORGE_DATABASE_URL" not in config
    assert "CHANGE-ME" in secret["stringData"]["DREAMFORGE_DATABASE_URL"]


def test_nats_jetstream_cluster_of_three() -> None:
    nats = _one("StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    headless = _one("Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert nats["spec"]["volumeClaimTemplates"]
    config_maps = [
        v["configMap"]["name"] for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v
    ]
    assert config_maps
    conf = _one("ConfigMap", config_maps[0])["data"]["nats.conf"]
    assert re.search(r"jetstream\s*\{[^}]*store_dir", conf)
    routes = re.search(r"routes\s*\[([^\]]*)\]", conf)
    assert routes, "cluster routes missing"
    for ordinal in range(3):
        assert f"nats-{ordinal}.{headless['metadata']['name']}." in routes.group(1)
    assert _one("Service", "nats")["spec"]["ports"][0]["port"] == 4222


def test_nats_disruption_budget_keeps_quorum() -> None:
    budgets = [
        pdb
        for pdb in _objects("PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"]
        == _one("StatefulSet", "nats")["spec"]["selector"]["matchLabels"]
    ]
    assert len(budgets) == 1
    spec = budgets[0]["spec"]
    assert spec.get("minAvailable") == 2 or spec.get("maxUnavailable") == 1


def test_redis() -> None:
    workloads = {w["metadata"]["name"]: w for w in _workloads()}
    assert "redis" in workloads
    assert _one("Service", "redis")["spec"]["ports"][0]["port"] == 6379


def test_six_service_deployments() -> None:
    deployments = _objects("Deployment")
    assert APP_SERVICES <= set(deployments)
    for name in APP_SERVICES:
        deployment = deployments[name]
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        container = pod["spec"]["containers"][0]
        assert container["image"].startswith(f"dreamforge/{name}:"), name
        env_from = {next(iter(ref.values()))["name"] for ref in container.get("envFrom", [])}
        assert {"dreamforge-config", "dreamforge-secrets"} <= env_from, name
        security = pod["spec"].get("securityContext", {})
        assert security.get("runAsNonRoot") is True, name


def test_services_expose_the_ports() -> None:
    services = _objects("Service")
    deployments = _objects("Deployment")
    for name, port in GRPC_PORTS.items():
        assert port in {p["port"] for p in services[name]["spec"]["ports"]}, name
    assert {8080, 50050} <= {p["port"] for p in services["gateway"]["spec"]["ports"]}
    for name in APP_SERVICES:
        selector = services[name]["spec"]["selector"]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"Service {name} selects no pod"


def test_probes_on_every_service_container() -> None:
    deployments = _objects("Deployment")
    for name in APP_SERVICES:
        for container in deployments[name]["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container, f"{name}/{container['name']}"
            assert "livenessProbe" in container, f"{name}/{container['name']}"
    for name, port in GRPC_PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, f"{name} {probe}"
        assert port in {p["containerPort"] for p in container["ports"]}
    gateway = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports["http"] == 8080 and ports["grpc"] == 50050
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        http = gateway[probe]["httpGet"]
        assert http["path"] == path
        assert http["port"] in (8080, "http")


def test_resources_on_every_container() -> None:
    for workload in _workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where


def test_gpu_scheduling() -> None:
    deployments = _objects("Deployment")
    for name in GPU_SERVICES | {"triton"}:
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]), name
        assert pod.get("nodeSelector") or pod.get("affinity"), name


def test_triton_is_reachable_by_inference() -> None:
    config = _one("ConfigMap", "dreamforge-config")["data"]
    host, port = config["DREAMFORGE_TRITON_URL"].split(":")
    service = _one("Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    triton = _one("Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert "--model-repository=/models" in triton["args"]


def _durable_consumers() -> set[str]:
    """The durable JetStream consumers the services subscribe (`bus.subscribe(..., durable=...)`)."""
    sources = (ROOT / "services").glob("*/main.py")
    return {name for path in sources for name in re.findall(r'durable="([^"]+)"', path.read_text())}


def test_autoscaling_on_queue_depth() -> None:
    """Each GPU service scales on the depth of what it really consumes: inference on its requests in
    flight (it takes them over gRPC, not from a JetStream queue), the trainer on its consumer's backlog."""
    hpas = _objects("HorizontalPodAutoscaler")
    deployments = _objects("Deployment")
    for name in GPU_SERVICES:
        spec = hpas[name]["spec"]
        assert hpas[name]["apiVersion"] == "autoscaling/v2"
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
        # The HPA owns the replica count; a fixed one in the Deployment would fight it.
        assert "replicas" not in deployments[name]["spec"], name
    [inference] = hpas["inference"]["spec"]["metrics"]
    assert inference["type"] == "Pods" and inference["pods"]["metric"]["name"] == IN_FLIGHT_METRIC
    template = deployments["inference"]["spec"]["template"]
    port = int(_one("ConfigMap", "dreamforge-config")["data"]["DREAMFORGE_METRICS_PORT"])
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert port in {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    [trainer] = hpas["trainer"]["spec"]["metrics"]
    metric = trainer["external"]["metric"]
    assert trainer["type"] == "External" and metric["name"] == "nats_jetstream_consumer_num_pending"
    assert metric["selector"]["matchLabels"]["consumer_name"] in _durable_consumers()
    assert "trainer-rewards" in _durable_consumers()  # the parse above finds the real names