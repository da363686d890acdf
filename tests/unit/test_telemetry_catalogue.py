"""The telemetry catalogue is the one home of every metric name and alert threshold.

Every metric an alert rule or a dashboard panel names must be declared in
``modelguard.contracts.telemetry``; every numeric threshold an alert compares against must
either name the code or policy default it mirrors (``# threshold: dotted.path``, and the
values must be equal) or say why it is its own (``# threshold: own: reason``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics import MetricWrapperBase

from modelguard.adapters.dependency import dependency_gauge
from modelguard.adapters.ingest import IngestMetrics
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.telemetry import (
    CATALOGUE,
    DURATION_BUCKETS,
    LATENCY_STAGES,
    MODEL_INFERENCE_DURATION_SECONDS,
    MODELGUARD_SDK_INFERENCE_DURATION_SECONDS,
    by_series,
)
from modelguard.routing import RoutingClient
from modelguard.sdk import EventSDK
from modelguard_services.controller.app import ControllerMetrics
from modelguard_services.drift.metrics import DriftMetrics
from modelguard_services.experiments.app import ExperimentMetrics
from modelguard_services.metrics.exposition import MetricsCollector
from modelguard_services.simulator.app import SimulatorService, load_scenario
from modelguard_services.validator.app import PredictionCounters
from tests.support.paths import ROOT

RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords removed).

    >>> sorted(metric_names('sum by (a) (rate(x_total{a="b"}[5m])) / y > 0.5'))
    ['x_total', 'y']
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS or name.startswith("$"):
            continue
        if re.fullmatch(r"\d[\w.]*", name):
            continue
        names.add(name)
    return names


def unknown_metrics(expr: str) -> set[str]:
    return {n for n in metric_names(expr) if by_series(n) is None}


def _rule_blocks(path: Path) -> list[tuple[str, str, str]]:
    """(alert name, expr, raw text of the rule incl. comments) per alert in ``path``."""
    raw = path.read_text()
    parsed = yaml.safe_load(raw)
    exprs = {r["alert"]: r["expr"] for g in parsed["groups"] for r in g["rules"] if "alert" in r}
    chunks = re.split(r"(?m)^\s*- alert:\s*", raw)[1:]
    out = []
    for chunk in chunks:
        name = chunk.split("\n", 1)[0].strip()
        # the comment lines belonging to a rule stand inside its block
        out.append((name, exprs[name], chunk))
    return out


ALL_RULES = [(p.name, *b) for p in RULES for b in _rule_blocks(p)]


def _dashboard_exprs(path: Path) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(path.read_text()))
    return found


def test_catalogue_declares_each_family_once_with_a_valid_shape() -> None:
    assert len(CATALOGUE) > 50
    for name, family in CATALOGUE.items():
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        assert not name.endswith("_total"), f"{name}: counters are declared without _total"
        assert family.help and family.exporter, name
        assert (family.buckets is not None) == (family.kind == "histogram"), name
        assert "quantile" not in family.labels, (
            f"{name}: 'quantile' is reserved for summaries (promtool lint)"
        )


@pytest.mark.parametrize(("file", "alert", "expr", "block"), ALL_RULES)
def test_alert_rules_name_only_catalogued_metrics(
    file: str, alert: str, expr: str, block: str
) -> None:
    assert unknown_metrics(expr) == set(), f"{file}:{alert}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_name_only_catalogued_metrics(path: Path) -> None:
    bad = {n for e in _dashboard_exprs(path) for n in unknown_metrics(e)}
    assert bad == set()


def test_an_unknown_metric_is_caught() -> None:
    assert unknown_metrics("max by (model_name) (model_accuracy_dorp_percent) > 10") == {
        "model_accuracy_dorp_percent"
    }
    assert unknown_metrics("rate(model_predictions_total[5m])") == set()
    assert unknown_metrics("rate(model_predictions[5m])") == {"model_predictions"}


# -- thresholds ----------------------------------------------------------------------------

_COMPARISON = re.compile(r"(?:>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$")


def resolve_default(path: str) -> float:
    """The value at a dotted path: a module constant, or a class field's default."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:-1]:
            obj = getattr(obj, attr)
        last = parts[-1]
        if cut == len(parts):
            raise ValueError(f"{path} names a module, not a value")
        fields = getattr(obj, "model_fields", None)
        if fields is not None and last in fields:
            return float(fields[last].default)
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                if f.name == last:
                    return float(f.default)  # type: ignore[arg-type]
        return float(getattr(obj, last))
    raise ValueError(f"cannot import anything of {path}")


def threshold_problems(expr: str, block: str) -> list[str]:
    """Why an alert's threshold is not tied to a default (empty when it is)."""
    m = _COMPARISON.search(expr.strip())
    if m is None or float(m.group(1)) in (0.0, 1.0):  # no threshold, or a boolean gauge
        return []
    value = float(m.group(1))
    note = re.search(r"#\s*threshold:\s*(\S.*)$", block, re.MULTILINE)
    if note is None:
        return [f"threshold {value:g} has no '# threshold:' comment"]
    target = note.group(1).strip()
    if target.startswith("own:"):
        return [] if len(target) > len("own:") + 10 else ["'own:' needs a reason"]
    default = resolve_default(target)
    if default != value:
        return [f"threshold {value:g} differs from {target} = {default:g}"]
    return []


@pytest.mark.parametrize(("file", "alert", "expr", "block"), ALL_RULES)
def test_alert_thresholds_mirror_their_defaults(
    file: str, alert: str, expr: str, block: str
) -> None:
    assert threshold_problems(expr, block) == [], f"{file}:{alert}"


def test_a_drifted_threshold_is_caught() -> None:
    path = "modelguard.core.metrics.processor.MetricsConfig.drift_drop_percent"
    default = resolve_default(path)
    assert threshold_problems(f"x > {default:g}", f"# threshold: {path}\n") == []
    assert threshold_problems(f"x > {default + 5:g}", f"# threshold: {path}\n") != []
    assert threshold_problems("x > 0.7", "expr: x > 0.7\n") != []
    own = "# threshold: own: the paging level for all models\n"
    assert threshold_problems("x > 0.7", own) == []


# -- exporters build from the catalogue ----------------------------------------------------


def exported(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """Family name -> (type, label names) of everything ``registry`` exports.

    Label names come from the metric objects (so families without samples count too);
    for custom collectors, from their samples (None when a family has none).
    """
    out: dict[str, tuple[str, tuple[str, ...] | None]] = {}
    for collector in list(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            out[collector._name] = (collector._type, tuple(collector._labelnames))
            continue
        for family in collector.collect():
            seen = {tuple(k for k in s.labels if k != "le") for s in family.samples}
            assert len(seen) <= 1, family.name
            out[family.name] = (family.type, seen.pop() if seen else None)
    return out


def catalogue_problems(
    families: dict[str, tuple[str, tuple[str, ...] | None]], exporters: set[str]
) -> list[str]:
    """What an exporter exports that the catalogue does not declare as exported by it."""
    problems = []
    for name, (kind, labels) in sorted(families.items()):
        family = CATALOGUE.get(name)
        if family is None:
            problems.append(f"{name}: not in the catalogue")
            continue
        if family.kind != kind:
            problems.append(f"{name}: exported as a {kind}, catalogued as a {family.kind}")
        if labels is not None and labels != family.labels:
            problems.append(f"{name}: labels {labels}, catalogued {family.labels}")
        if family.exporter not in exporters:
            problems.append(f"{name}: catalogued as exported by {family.exporter!r}")
    return problems


def _sdk(registry: CollectorRegistry) -> EventSDK:
    # the producer connects lazily: nothing listens on this port and nothing is sent
    sdk = EventSDK("127.0.0.1:1", registry=registry, message_timeout_s=1)
    sdk.queued["prediction"] = 1
    sdk.dropped["prediction"] = 1
    sdk.invalid["prediction"] = 1
    sdk.delivery_failures[("t", "_MSG_TIMED_OUT")] = 1
    with sdk.timer("fraud", "v1") as timer, timer.stage("inference"):
        pass  # the stage histogram is a custom collector: its labels come from samples
    return sdk


def _build_ingest(registry: CollectorRegistry) -> None:
    IngestMetrics(registry, "svc")


def _build_dependency(registry: CollectorRegistry) -> None:
    dependency_gauge(registry)


def _build_routing(registry: CollectorRegistry) -> None:
    # the client connects lazily (on start): nothing listens on this port
    RoutingClient(redis.Redis(port=1), CommonSettings().redis_keys, registry=registry)


def _build_sdk(registry: CollectorRegistry) -> None:
    _sdk(registry).close()


def _build_controller(registry: CollectorRegistry) -> None:
    ControllerMetrics(registry)


def _build_experiments(registry: CollectorRegistry) -> None:
    ExperimentMetrics(registry)


def _build_simulator(registry: CollectorRegistry) -> None:
    scenario = load_scenario(ROOT / "deploy" / "scenarios" / "demo-canary.yaml")
    sdk = _sdk(registry)
    SimulatorService(CommonSettings(), scenario, registry=registry, sdk=sdk, routing=False)
    sdk.close()


def _build_metrics(registry: CollectorRegistry) -> None:
    registry.register(MetricsCollector())


def _build_validator(registry: CollectorRegistry) -> None:
    PredictionCounters(registry)


def _build_drift(registry: CollectorRegistry) -> None:
    DriftMetrics(registry)


EXPORTERS = {
    "metrics": (_build_metrics, {"metrics"}),
    "validator": (_build_validator, {"validator"}),
    "drift": (_build_drift, {"drift"}),
    "ingest": (_build_ingest, {"every consumer"}),
    "dependency": (_build_dependency, {"every service"}),
    "routing-client": (_build_routing, {"routing-client"}),
    "sdk": (_build_sdk, {"sdk"}),
    "controller": (_build_controller, {"controller"}),
    "experiments": (_build_experiments, {"experiments"}),
    "simulator": (_build_simulator, {"simulator", "sdk"}),
}


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_migrated_exporters_export_only_their_catalogued_families(name: str) -> None:
    build, exporters = EXPORTERS[name]
    registry = CollectorRegistry()
    build(registry)
    families = exported(registry)
    assert catalogue_problems(families, exporters) == []
    # and every family the catalogue gives this exporter is there
    own = {f.name for f in CATALOGUE.values() if f.exporter in exporters}
    assert own - set(families) == set()


def test_an_uncatalogued_or_reshaped_family_is_caught() -> None:
    registry = CollectorRegistry()
    Counter("modelguard_made_up", "x", ["a"], registry=registry)
    Gauge("model_accuracy", "x", ["model_name"], registry=registry)
    Counter("modelguard_controller_leader", "x", ["replica"], registry=registry)
    problems = catalogue_problems(exported(registry), {"controller"})
    assert problems == [
        "model_accuracy: labels ('model_name',), catalogued ('model_name', 'model_version')",
        "model_accuracy: catalogued as exported by 'metrics'",
        "modelguard_controller_leader: exported as a counter, catalogued as a gauge",
        "modelguard_made_up: not in the catalogue",
    ]


def test_one_exporter_per_metric_name() -> None:
    """The SDK times stages in its own family; the metrics processor owns the fleet view."""
    registry = CollectorRegistry()
    _build_sdk(registry)
    families = exported(registry)
    assert MODEL_INFERENCE_DURATION_SECONDS.name not in families
    sdk = families[MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.name]
    assert sdk == ("histogram", MODEL_INFERENCE_DURATION_SECONDS.labels)
    assert MODEL_INFERENCE_DURATION_SECONDS.exporter == "metrics"
    assert MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.buckets == DURATION_BUCKETS
    assert DURATION_BUCKETS[0] == 0.01 and DURATION_BUCKETS[-1] == 10.0
    assert LATENCY_STAGES == ("preprocessing", "inference", "postprocessing")
