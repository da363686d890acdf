"""The controller's Prometheus rules and the production Alertmanager config validate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package prometheus/prometheus-alertmanager)")
    return path


def test_controller_rules_pass_promtool() -> None:
    rules = ROOT / "deploy" / "prometheus" / "rules" / "controller.yml"
    out = subprocess.run(
        [_tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    names = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    assert {
        "ModelVersionRolledBack",
        "ModelServingVersionBreach",
        "ModelguardControllerNoLeader",
    } <= names


def test_alertmanager_config_pages_critical_alerts() -> None:
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    out = subprocess.run(
        [_tool("amtool"), "check-config", str(config)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    routes = subprocess.run(
        [
            _tool("amtool"),
            "config",
            "routes",
            "test",
            "--config.file",
            str(config),
            "severity=critical",
            "alertname=ModelServingVersionBreach",
        ],
        capture_output=True,
        text=True,
    )
    assert routes.returncode == 0, routes.stderr
    assert "pagerduty-ml-platform" in routes.stdout
    warn = subprocess.run(
        [
            _tool("amtool"),
            "config",
            "routes",
            "test",
            "--config.file",
            str(config),
            "severity=warning",
        ],
        capture_output=True,
        text=True,
    )
    assert warn.stdout.strip() == "slack-ml-platform"
