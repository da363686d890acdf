"""The Helm chart: ``helm lint``, ``helm template``, offline Kubernetes schemas, and the
rendered configuration read back by the services' own loaders.

helm is built from the Go module proxy by ``helm/install-helm.sh`` into ``.cache/`` (a
few minutes once, then cached); a machine without ``go`` fails here, it never skips.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modelguard.core.control import load_policies
from modelguard_services import SERVICES as DEPLOYED
from modelguard_services.simulator.app import load_scenario
from tests.support.paths import ROOT

# The first run builds helm (3-5 minutes on 2 busy cores); later runs take seconds.
pytestmark = pytest.mark.timeout(900)
CHART = ROOT / "helm" / "modelguard"
KUBE_VERSION = "1.33.0"
SERVICES = sorted(DEPLOYED)
REDIS_USERS = {
    "validator": "router",
    "metrics": "router",
    "drift": "drift",
    "controller": "controller",
    "experiments": "experiments",
    "simulator": "operator",
}
ALL_ON = [
    "--set",
    "serviceMonitor.enabled=true,services.simulator.enabled=true",
    "--set",
    "redis.passwordSecret=modelguard-redis,extraEnv.MODELGUARD_EXTRA=x,"
    "kafka.securityProtocol=SASL_SSL,kafka.saslUsername=mg,kafka.saslPasswordSecret=mg-kafka,"
    "kafka.tlsCaSecret=mg-kafka-ca",
]


@pytest.fixture(scope="module")
def helm() -> str:
    result = subprocess.run(
        [str(ROOT / "helm" / "install-helm.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"helm/install-helm.sh failed:\n{result.stderr[-3000:]}"
    return result.stdout.strip()


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [helm, "template", "mg", str(CHART), "-n", "ml", "--kube-version", KUBE_VERSION, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("values", [[], ALL_ON], ids=["defaults", "all-on"])
def test_chart_lints_strictly(helm: str, values: list[str]) -> None:
    result = subprocess.run(
        [helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *values],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [[], ALL_ON], ids=["defaults", "all-on"])
def test_rendered_manifests_match_the_kubernetes_schemas(helm: str, values: list[str]) -> None:
    assert KUBE_VERSION in kubernetes_validate.utils.all_versions()
    docs = render(helm, *values)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked against the Services in the test below
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += 1
    deployments = by_kind(docs, "Deployment")
    enabled = [s for s in SERVICES if values or s != "simulator"]
    assert sorted(deployments) == sorted(f"mg-modelguard-{s}" for s in enabled)
    assert checked == len(docs) - (1 if values else 0)


def test_a_schema_violation_is_caught() -> None:
    """The validator really checks: a Deployment without its selector is refused."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


def test_every_service_runs_its_module_with_env_probes_and_resources(helm: str) -> None:
    docs = render(helm, *ALL_ON)
    services = by_kind(docs, "Service")
    for name in SERVICES:
        dep = by_kind(docs, "Deployment")[f"mg-modelguard-{name}"]
        pod = dep["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["command"] == [".venv/bin/python", "-m", f"modelguard_services.{name}"]
        assert container["image"] == f"ghcr.io/modelguard/{name}:0.1.0"
        env = {e["name"]: e for e in container["env"]}
        assert env["MODELGUARD_METRICS_PORT"]["value"] == "9100"
        assert env["MODELGUARD_METRICS_HOST"]["value"] == "0.0.0.0"
        assert env["MODELGUARD_KAFKA_BOOTSTRAP_SERVERS"]["value"] == "kafka:9092"
        # Secrets only as mounted files (ADR 0012): each service its own Redis user.
        user = REDIS_USERS[name]
        assert env["MODELGUARD_REDIS_URL"]["value"] == "redis://redis:6379/0"
        assert env["MODELGUARD_REDIS_USERNAME"]["value"] == user
        password_file = Path(env["MODELGUARD_REDIS_PASSWORD_FILE"]["value"])
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert mounts["redis-password"]["mountPath"] == str(password_file.parent)
        assert volumes["redis-password"]["secret"]["secretName"] == "modelguard-redis"
        assert volumes["redis-password"]["secret"]["items"] == [
            {"key": f"redis-{user}", "path": password_file.name}
        ]
        assert env["MODELGUARD_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["MODELGUARD_KAFKA_SASL_USERNAME"]["value"] == "mg"
        kafka_file = Path(env["MODELGUARD_KAFKA_SASL_PASSWORD_FILE"]["value"])
        assert mounts["kafka-password"]["mountPath"] == str(kafka_file.parent)
        assert volumes["kafka-password"]["secret"]["secretName"] == "mg-kafka"
        assert env["MODELGUARD_KAFKA_SSL_CA_FILE"]["value"].startswith(
            mounts["kafka-ca"]["mountPath"]
        )
        for e in container["env"]:  # no secret value in the environment
            assert "valueFrom" not in e and "PASSWORD=" not in str(e.get("value")), e
        assert env["MODELGUARD_EXTRA"]["value"] == "x"
        (port,) = container["ports"]
        assert port == {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        svc = services[f"mg-modelguard-{name}"]
        labels = pod["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(selector.items() <= s["metadata"]["labels"].items() for s in services.values())
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["ml"]


def test_values_reach_the_containers(helm: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {"services": {"metrics": {"env": {"MODELGUARD_METRICS_BASELINES": '{"fraud": 0.9}'}}}}
        )
    )
    docs = render(
        helm,
        "-f",
        str(values),
        "--set",
        "services.metrics.replicas=5,services.drift.args={--alpha,0.01},image.tag=1.2.3",
    )
    deps = by_kind(docs, "Deployment")
    metrics = deps["mg-modelguard-metrics"]
    assert metrics["spec"]["replicas"] == 5
    (container,) = metrics["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELGUARD_METRICS_BASELINES"] == '{"fraud": 0.9}'
    assert container["image"] == "ghcr.io/modelguard/metrics:1.2.3"
    (drift,) = deps["mg-modelguard-drift"]["spec"]["template"]["spec"]["containers"]
    assert drift["args"] == ["--alpha", "0.01"]


def test_configmaps_hold_policies_and_scenarios_the_services_load(
    helm: str, tmp_path: Path
) -> None:
    docs = render(helm, *ALL_ON)
    maps = by_kind(docs, "ConfigMap")
    policies = maps["mg-modelguard-policies"]["data"]
    scenarios = maps["mg-modelguard-scenarios"]["data"]
    # The chart's copies are the repository's files, byte for byte: every policy file,
    # and the scenarios the chart chose to ship.
    repo_policies = {p.name: p.read_text() for p in (ROOT / "deploy/policies").glob("*.yaml")}
    assert policies == repo_policies, (
        "sync: cp deploy/policies/*.yaml helm/modelguard/files/policies/"
    )
    for name, text in scenarios.items():
        assert text == (ROOT / "deploy/scenarios" / name).read_text(), f"sync {name}"
    (tmp_path / "policies").mkdir()
    for name, text in policies.items():
        (tmp_path / "policies" / name).write_text(text)
    assert load_policies(tmp_path / "policies")
    (sim,) = by_kind(docs, "Deployment")["mg-modelguard-simulator"]["spec"]["template"]["spec"][
        "containers"
    ]
    scenario_file = sim["args"][sim["args"].index("--scenario") + 1]
    name = Path(scenario_file).name
    (tmp_path / name).write_text(scenarios[name])
    assert load_scenario(tmp_path / name).models
    (ctl,) = by_kind(docs, "Deployment")["mg-modelguard-controller"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert ctl["args"][:2] == ["--policies", "/etc/modelguard/policies"]
    assert {"name": "policies", "mountPath": "/etc/modelguard/policies", "readOnly": True} in ctl[
        "volumeMounts"
    ]


def test_policies_from_values_replace_the_defaults(helm: str, tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "policies" / "models.yaml").read_text()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"policies": {"files": {"custom.yaml": text}}}))
    docs = render(helm, "-f", str(values))
    data = by_kind(docs, "ConfigMap")["mg-modelguard-policies"]["data"]
    assert data == {"custom.yaml": text.rstrip("\n")}
