"""The controller's Prometheus rules validate and fire on a 0 -> 1 decision counter (which
the controller guarantees by creating its series at 0); the production Alertmanager
config validates."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from modelguard.contracts.decisions import RoutingDecision
from modelguard_services.controller.app import ACTIONS, ControllerMetrics
from tests.support.paths import ROOT


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


def test_rolled_back_and_breach_alerts_fire_on_a_counter_going_from_0_to_1() -> None:
    tests = Path(__file__).parent / "prometheus" / "controller_alerts_test.yml"
    out = subprocess.run(
        [_tool("promtool"), "test", "rules", tests.name],
        cwd=tests.parent,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_decision_series_exist_at_zero_before_the_first_decision() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.init_decisions("fraud", dry_run=False)

    def value(model: str, action: str) -> float | None:
        labels = {"model_name": model, "action": action, "dry_run": "false"}
        return registry.get_sample_value("modelguard_controller_decisions_total", labels)

    assert {"rollback", "alert", "retrain", "ramp", "promote", "freeze", "hold"} <= set(ACTIONS)
    assert all(value("fraud", a) == 0.0 for a in ACTIONS)
    assert value("other", "rollback") is None
    decision = RoutingDecision(
        decision_id="dec-1",
        model="other",
        action="alert",
        reason="test",
        decided_at=datetime(2026, 11, 1, 12, tzinfo=UTC),
    )
    # a model first met in a decision (the service also creates them when it first sees
    # an event of the model): the other actions start at 0 as well
    metrics.count_decision(decision)
    assert value("other", "alert") == 1.0
    assert value("other", "rollback") == 0.0


def test_alertmanager_config_pages_critical_alerts() -> None:
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    out = subprocess.run(
        [_tool("amtool"), "check-config", str(config)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr

    def route(*labels: str) -> subprocess.CompletedProcess[str]:
        """``amtool config routes test`` of ``labels``: prints the receiver."""
        return subprocess.run(
            [_tool("amtool"), "config", "routes", "test", "--config.file", str(config), *labels],
            capture_output=True,
            text=True,
        )

    routes = route("severity=critical", "alertname=ModelServingVersionBreach")
    assert routes.returncode == 0, routes.stderr
    assert "pagerduty-ml-platform" in routes.stdout
    warn = route("severity=warning")
    assert warn.stdout.strip() == "slack-ml-platform"
