"""One home per default: settings take theirs from the core config types, and the
deployment files (Helm values, docker-compose) pass only what differs from them."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import yaml

from modelguard.core.drift import DriftConfig
from modelguard.core.metrics import MetricsConfig
from modelguard_services.metrics.settings import MetricsSettings
from tests.support.paths import ROOT

#: CLI flag of the drift service -> DriftConfig field.
DRIFT_FLAGS = {
    "--window-events": "window_events",
    "--warmup-events": "warmup_events",
    "--alpha": "alpha",
}


def test_metrics_settings_defaults_are_the_processors() -> None:
    config = MetricsConfig()
    built = MetricsSettings().processor_config()
    for field in dataclasses.fields(MetricsConfig):
        assert getattr(built, field.name) == getattr(config, field.name), field.name


def repeated_defaults(env: dict[str, Any], args: list[str]) -> list[str]:
    """Environment entries and drift flags whose value is the code's default anyway."""
    settings = MetricsSettings.model_fields
    found = []
    for key, value in env.items():
        name = key.removeprefix("MODELGUARD_").lower()
        field = settings.get(name)
        if field is None or not isinstance(field.default, int | float | str):
            continue  # not a setting of a scalar default (or one with a factory)
        if type(field.default)(value) == field.default:
            found.append(f"{key}={value}")
    drift = DriftConfig()
    for flag, value in itertools.pairwise(args):
        if flag in DRIFT_FLAGS:
            default = getattr(drift, DRIFT_FLAGS[flag])
            if type(default)(value) == default:
                found.append(f"{flag} {value}")
    return found


def test_helm_values_pass_only_what_differs_from_the_defaults() -> None:
    values = yaml.safe_load((ROOT / "helm" / "modelguard" / "values.yaml").read_text())
    found = {
        name: repeated_defaults(svc.get("env") or {}, [str(a) for a in svc.get("args") or []])
        for name, svc in values["services"].items()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_compose_passes_only_what_differs_from_the_defaults() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = {}
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        found[name] = repeated_defaults(env, [str(a) for a in svc.get("command") or []])
    assert {k: v for k, v in found.items() if v} == {}


def test_a_repeated_default_is_caught() -> None:
    default = MetricsConfig().drift_drop_percent
    assert repeated_defaults({"MODELGUARD_METRICS_DRIFT_DROP_PERCENT": f"{default:g}"}, []) != []
    assert repeated_defaults({"MODELGUARD_METRICS_DRIFT_DROP_PERCENT": "12.5"}, []) == []
    window = DriftConfig().window_events
    assert repeated_defaults({}, ["--window-events", str(window)]) == [f"--window-events {window}"]
    assert repeated_defaults({}, ["--window-events", str(window * 2)]) == []
