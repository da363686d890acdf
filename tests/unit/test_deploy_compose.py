"""docker-compose.yml: validated by ``docker-compose config`` (no daemon needed), then
checked against the code: every deployed service (``modelguard_services.SERVICES``) is
built from ``deploy/Dockerfile`` and runs its module, its settings are
accepted by the service's own settings class, Prometheus scrapes it (promtool checks the
config with the real rule files), and the mounted files exist and load.

``docker-compose`` (Debian's v1) and ``promtool`` are installed with the local stack's
apt helper when missing; without root that fails with the command to run, never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelguard.adapters.redis_acl import ROLES
from modelguard.adapters.settings import CommonSettings
from modelguard.core.control import load_policies
from modelguard_devstack.servers import apt_install
from modelguard_services import LOCAL_TOOLS
from modelguard_services import SERVICES as DEPLOYED
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.simulator.app import load_scenario
from tests.support.paths import ROOT

SERVICES = sorted(DEPLOYED)
DOCKERFILE = "deploy/Dockerfile"
SETTINGS: dict[str, type[CommonSettings]] = {"metrics": MetricsSettings}
EXTRA_ENV = {"MODELGUARD_POLICIES"}  # read by the controller's __main__


def tool(binary: str, package: str) -> str:
    if shutil.which(binary) is None:
        apt_install((package,), reason=f"the deployment tests need {binary}")
    path = shutil.which(binary)
    assert path, f"{binary} still missing after installing {package}"
    return path


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The normalised configuration printed by ``docker-compose config``."""
    result = subprocess.run(
        [tool("docker-compose", "docker-compose"), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith("MODELGUARD_") or key in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
            monkeypatch.delenv(key)
    yield monkeypatch


def ports(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Published ports as ``{host_ip, published, target}`` (docker-compose prints
    ``ip:published:target/proto`` strings when a host address is given)."""
    out = []
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            out.append({"host_ip": spec.get("host_ip", ""), **spec})
            continue
        host_ip, published, target = str(spec).split("/")[0].rsplit(":", 2)
        out.append({"host_ip": host_ip, "published": int(published), "target": int(target)})
    return out


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        host, target = volume.split(":")[:2]
        if host.startswith("/"):
            out[target] = Path(host)
    return out


def test_the_service_list_is_every_runnable_package_but_the_local_tools() -> None:
    runnable = {
        p.parent.name for p in (ROOT / "services" / "modelguard_services").glob("*/__main__.py")
    }
    assert set(SERVICES) == runnable - set(LOCAL_TOOLS)
    assert set(LOCAL_TOOLS) <= runnable
    assert not list((ROOT / "services").rglob("Dockerfile")), "one Dockerfile: deploy/"


def test_the_one_dockerfile_takes_the_service_as_a_build_argument() -> None:
    lines = [
        line.strip()
        for line in (ROOT / DOCKERFILE).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "ARG SERVICE" in lines
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    assert "modelguard_services.${SERVICE}" in cmd
    assert "ENV SERVICE=$SERVICE" in lines  # the CMD runs after the build arguments are gone


def test_every_service_is_built_from_the_one_dockerfile_and_runs_its_module(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    built = {name for name, svc in services.items() if "build" in svc}
    assert built == set(SERVICES)
    for name in SERVICES:
        svc = services[name]
        assert svc["build"] == {
            "context": str(ROOT),
            "dockerfile": DOCKERFILE,
            "args": {"SERVICE": name},
        }
        command = svc.get("command")
        if command is not None:
            assert command[:3] == [".venv/bin/python", "-m", f"modelguard_services.{name}"]
    assert services["simulator"]["profiles"] == ["demo"]
    for infra in ("kafka", "redis", "prometheus", "alertmanager", "grafana"):
        assert infra in services


def test_service_env_is_accepted_by_the_services_own_settings(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        settings_cls = SETTINGS.get(name, CommonSettings)
        known = {f"MODELGUARD_{field.upper()}" for field in settings_cls.model_fields}
        unknown = {k for k in env if k.startswith("MODELGUARD_")} - known - EXTRA_ENV
        assert not unknown, f"{name}: variables no setting reads: {unknown}"
        with clean_env.context() as mp:
            for key, value in env.items():
                mp.setenv(key, str(value))
            settings = settings_cls()
        assert settings.metrics_host == "0.0.0.0"
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        assert settings.redis_url == "redis://redis:6379/0"
        port = settings.metrics_port
        published = {p["target"] for p in ports(services[name])}
        assert published == {port}, f"{name} publishes {published}, listens on {port}"
        # Healthy means /metrics answers on that port.
        assert str(port) in " ".join(services[name]["healthcheck"]["test"])


def test_processors_wait_for_the_controller_that_creates_the_topics(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name in set(SERVICES) - {"controller"}:
        assert services[name]["depends_on"]["controller"] == {"condition": "service_healthy"}
    for name in SERVICES:
        assert services[name]["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_controller_policies_and_simulator_scenario_are_mounted_and_load(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    ctl = services["controller"]
    policies = ctl["environment"]["MODELGUARD_POLICIES"]
    assert ctl["command"][ctl["command"].index("--policies") + 1] == policies
    assert load_policies(bind_mounts(ctl)[policies])
    sim = services["simulator"]
    scenario = Path(sim["command"][sim["command"].index("--scenario") + 1])
    host = bind_mounts(sim)[str(scenario.parent)] / scenario.name
    assert load_scenario(host).models


def test_prometheus_scrapes_every_service_and_promtool_accepts_config_and_rules(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    services = compose["services"]
    mounts = bind_mounts(services["prometheus"])
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    for name in SERVICES:
        port = services[name]["environment"]["MODELGUARD_METRICS_PORT"]
        assert f"{name}:{port}" in targets
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":") == ["alertmanager", str(ports(services["alertmanager"])[0]["target"])]
    # promtool on the same config with the rule glob pointed at the mounted host folder.
    rules_host = mounts["/etc/prometheus/rules"]
    assert sorted(rules_host.glob("*.yml")), "no rule files mounted"
    config["rule_files"] = [
        r.replace("/etc/prometheus/rules", str(rules_host)) for r in config["rule_files"]
    ]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [tool("promtool", "prometheus"), "check", "config", str(local)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rule_file in rules_host.glob("*.yml"):
        assert rule_file.name in result.stdout


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    mounts = bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (ds,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    port = ports(services["prometheus"])[0]["target"]
    assert ds["url"] == f"http://prometheus:{port}" and ds["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "modelguard.yml").read_text())[
        "providers"
    ]
    dashboards_dir = mounts[provider["options"]["path"]]
    assert dashboards_dir == ROOT / "deploy" / "grafana" / "dashboards"
    assert {p.name for p in dashboards_dir.glob("*.json")} == {
        "model-performance.json",
        "drift.json",
        "rollout.json",
    }
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).name).is_file()


def test_bind_mounts_exist_and_host_ports_are_unique(compose: dict[str, Any]) -> None:
    published: list[int] = []
    for name, svc in compose["services"].items():
        for target, host in bind_mounts(svc).items():
            if target == "/etc/alertmanager/secrets":
                continue  # operator-provided secrets, never committed
            assert host.exists(), f"{name}: {host} -> {target} does not exist"
        published += [p["published"] for p in ports(svc)]
    assert len(published) == len(set(published)), published


def test_every_published_port_is_bound_to_loopback_by_default(
    compose: dict[str, Any],
) -> None:
    for name, svc in compose["services"].items():
        for p in ports(svc):
            assert p["host_ip"] == "127.0.0.1", f"{name} publishes {p} beyond loopback"


def test_secrets_come_from_files_never_from_environment_values(compose: dict[str, Any]) -> None:
    """Every service using Redis names its own ACL user and a mounted password file; no
    variable holds a password (ADR 0012)."""
    roles = {"controller": "controller", "drift": "drift", "experiments": "experiments"}
    roles |= {"simulator": "operator", "metrics": "router", "validator": "router"}
    for name in SERVICES:
        svc = compose["services"][name]
        env = svc["environment"]
        role = roles[name]
        assert env["MODELGUARD_REDIS_USERNAME"] == role, name
        assert env["MODELGUARD_REDIS_PASSWORD_FILE"] == f"/run/secrets/redis-{role}", name
        assert [s["source"] for s in svc["secrets"]] == [f"redis-{role}"], name
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            secretish = any(w in key.upper() for w in ("PASSWORD", "SECRET", "TOKEN"))
            if secretish:
                assert key.endswith(("_FILE", "_DIR")), f"{name}: {key}={value!r}"
    for secret in compose["secrets"].values():
        assert Path(secret["file"]).is_relative_to(ROOT / "secrets")
    redis = compose["services"]["redis"]
    assert redis["entrypoint"][-1] == "/etc/modelguard/redis/render-acl.sh"
    assert len(redis["secrets"]) == len(ROLES)
