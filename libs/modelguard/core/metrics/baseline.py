"""Comparison of a version's accuracy with its model's baseline (declared in the
config, else the accuracy of the model's first full last-N window), and the trend."""

from __future__ import annotations

import math

from modelguard.core.metrics.config import MetricsConfig
from modelguard.core.metrics.formulas import accuracy_drop_percent
from modelguard.core.metrics.state import PartitionState, VersionState


def baseline(config: MetricsConfig, state: PartitionState, model: str) -> float | None:
    """The declared baseline accuracy of ``model``, else its automatic one, else None."""
    declared = config.baselines.get(model)
    return declared if declared is not None else state.auto_baselines.get(model)


def baseline_comparison(
    config: MetricsConfig, state: PartitionState, model: str, accuracy: float, n: int
) -> tuple[float, float, bool] | None:
    """(baseline, drop in percent of baseline, accuracy degraded flag), or None.

    The flag needs the drop to reach ``drift_drop_percent`` *and* be significant: a
    one-sided z test of ``accuracy`` (over ``n`` labels) against the baseline.
    """
    base = baseline(config, state, model)
    if base is None or base <= 0:
        return None
    drop = accuracy_drop_percent(base, accuracy)
    drift = False
    if n >= config.min_labelled_for_drift and drop >= config.drift_drop_percent:
        se = math.sqrt(max(base * (1 - base), 1e-12) / n)
        drift = (base - accuracy) / se >= config.drift_z
    return base, drop, drift


def add_comparison(
    config: MetricsConfig,
    state: PartitionState,
    model: str,
    metrics: dict[str, float],
) -> None:
    """Add ``baseline_accuracy``, ``accuracy_drop_percent`` and ``accuracy_degraded`` to
    ``metrics`` (when it has an accuracy and the model a baseline)."""
    acc = metrics.get("accuracy")
    if acc is None:
        return
    comparison = baseline_comparison(config, state, model, acc, int(metrics.get("n_labelled", 0)))
    if comparison is not None:
        metrics["baseline_accuracy"], metrics["accuracy_drop_percent"], drift = comparison
        metrics["accuracy_degraded"] = 1.0 if drift else 0.0


def compare(
    config: MetricsConfig,
    state: PartitionState,
    model: str,
    vs: VersionState,
    name: str,
    metrics: dict[str, float],
) -> None:
    """Add the trend (against the version's previous window ``name``) and the baseline
    comparison to ``metrics``."""
    acc = metrics.get("accuracy")
    if acc is None:
        return
    prev = vs.last_window_accuracy.get(name)
    if prev is not None:
        metrics["accuracy_trend"] = acc - prev
    vs.last_window_accuracy[name] = acc
    add_comparison(config, state, model, metrics)
