"""Edge validator counters (issue 11 item 13): duplicates once, regression counted,
class cardinality capped like the metrics processor, group id from the settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from modelguard.contracts import PredictionLogged
from modelguard.core.metrics.aggregate import MAX_TRACKED_CLASSES, OTHER_CLASS
from modelguard_services.validator.app import PredictionCounters
from modelguard_services.validator.settings import ValidatorSettings

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _p(pid: str, **kw: Any) -> PredictionLogged:
    fields: dict[str, Any] = {"prediction": 1}
    fields.update(kw)
    return PredictionLogged(
        prediction_id=pid,
        model="m",
        version="v1",
        unit_id="u",
        event_time=T0,
        latency_ms=1.0,
        **fields,
    )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return (
        registry.get_sample_value(name, {"model_name": "m", "model_version": "v1", **labels}) or 0.0
    )


def test_a_repeated_prediction_id_is_counted_once() -> None:
    registry = CollectorRegistry()
    counters = PredictionCounters(registry)
    for pid in ("a", "b", "a", "a"):
        counters.observe(_p(pid))
    total = "modelguard_validated_predictions_total"
    assert _value(registry, total, predicted_class="1") == 2
    assert registry.get_sample_value("modelguard_validated_duplicates_total") == 2


def test_regression_and_class_keys_follow_the_metrics_processor() -> None:
    registry = CollectorRegistry()
    counters = PredictionCounters(registry)
    counters.observe(_p("r", task="regression", prediction=2.5))
    counters.observe(_p("f", prediction=1.0))  # class "1", as the metrics processor
    total = "modelguard_validated_predictions_total"
    assert _value(registry, total, predicted_class="") == 1
    assert _value(registry, total, predicted_class="1") == 1


def test_predicted_class_cardinality_is_capped() -> None:
    registry = CollectorRegistry()
    counters = PredictionCounters(registry)
    n = MAX_TRACKED_CLASSES + 50
    for i in range(n):
        counters.observe(_p(f"p{i}", prediction=f"c{i}"))
    samples = [
        s
        for metric in registry.collect()
        if metric.name == "modelguard_validated_predictions"
        for s in metric.samples
        if s.name.endswith("_total")
    ]
    assert len(samples) == MAX_TRACKED_CLASSES + 1
    other = [s.value for s in samples if s.labels["predicted_class"] == OTHER_CLASS]
    assert other == [50.0]


def test_group_id_comes_from_the_settings() -> None:
    assert ValidatorSettings(topic_prefix="t-1").group_id() == "t-1-validator"
    assert ValidatorSettings(topic_prefix="t-1", validator_group_id="g").group_id() == "g"
