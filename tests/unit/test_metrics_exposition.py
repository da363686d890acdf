"""Label coverage gauge: from the latest closed window, or from totals before one closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from modelguard.contracts import LabelObserved, PredictionLogged
from modelguard.core.metrics import MetricsConfig, MetricsProcessor, PartitionState
from modelguard_services.metrics.exposition import MetricsCollector, build_view

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _coverage(processor: MetricsProcessor, state: PartitionState) -> float | None:
    collector = MetricsCollector()
    collector.view = build_view(processor, [state])
    registry = CollectorRegistry()
    registry.register(collector)
    return registry.get_sample_value(
        "model_label_coverage_ratio", {"model_name": "m", "model_version": "v1"}
    )


def _prediction(i: int, t: datetime) -> PredictionLogged:
    return PredictionLogged(
        prediction_id=f"p{i}",
        model="m",
        version="v1",
        unit_id="u",
        event_time=t,
        prediction=1,
        latency_ms=1.0,
    )


def test_coverage_before_any_window_closed_counts_expired_not_pending() -> None:
    processor = MetricsProcessor(MetricsConfig(label_ttl_s=10.0))
    state = PartitionState()
    for i in range(4):  # p0..p3 at t=0..3 s; p0 and p1 get labels
        state, _ = processor.handle(_prediction(i, T0 + timedelta(seconds=i)), state)
    for i in range(2):
        state, _ = processor.handle(
            LabelObserved(prediction_id=f"p{i}", label=1, event_time=T0 + timedelta(seconds=4)),
            state,
        )
    assert _coverage(processor, state) == 1.0  # p2, p3 are pending, not missing
    # Both streams move on to t=30 s (the watermark follows the slower one): p2 and p3
    # expire unlabelled (TTL 10 s) while the first minute's window is still open.
    state, closed = processor.handle(_prediction(9, T0 + timedelta(seconds=30)), state)
    state, more = processor.handle(
        LabelObserved(prediction_id="p9", label=1, event_time=T0 + timedelta(seconds=31)), state
    )
    assert not [w for w in closed + more if w.kind == "tumbling"]
    assert _coverage(processor, state) == 3 / 5  # p0, p1, p9 labelled; p2, p3 expired
