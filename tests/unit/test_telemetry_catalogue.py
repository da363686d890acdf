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
import yaml

from modelguard.contracts.telemetry import CATALOGUE, by_series

ROOT = Path(__file__).resolve().parents[2]
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
