"""The metrics processor's Prometheus alert rules validate, fire on their scenario and
stay silent on the healthy series (``promtool test rules``); every metric they use is
one the metrics service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from modelguard.contracts.telemetry import CATALOGUE
from tests.support.paths import ROOT

RULES = ROOT / "deploy" / "prometheus" / "rules" / "metrics.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian package prometheus)")
    return path


def test_metrics_rules_pass_promtool_check() -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    names = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert names == {
        "ModelAccuracyDropped",
        "ModelAccuracyDegraded",
        "ModelErrorRateHigh",
        "ModelLatencyP95High",
        "ModelLabelCoverageCollapsed",
        "ModelMetricsWatermarkStalled",
        "ModelMetricsLagging",
    }


def test_metrics_alerts_fire_on_their_scenario_only() -> None:
    tests = Path(__file__).parent / "prometheus" / "metrics_alerts_test.yml"
    out = subprocess.run(
        [_promtool(), "test", "rules", tests.name], cwd=tests.parent, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rules_use_only_series_the_services_export() -> None:
    # what the metrics processor exports, by the catalogue (exporters are checked against
    # it in tests/unit/test_telemetry_catalogue.py)
    known = {
        series
        for family in CATALOGUE.values()
        if family.exporter in {"metrics", "every consumer", "every service"}
        for series in family.series
    }
    used = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"\b((?:model|modelguard)_[a-z0-9_]+)\b", rule["expr"]))
    used -= {label for family in CATALOGUE.values() for label in family.labels}
    assert used <= known, used - known
    assert "model_concept_drift_detected" not in used  # the drift processor's series
