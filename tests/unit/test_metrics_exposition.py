"""Label coverage gauge: from the latest closed window, or from totals before one closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from modelguard.contracts import LabelObserved, PredictionLogged
from modelguard.core.metrics import MetricsConfig, MetricsProcessor, PartitionState
from modelguard_services.metrics.exposition import MetricsCollector, build_view
from tests.support.events import prediction

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
    return prediction(prediction_id=f"p{i}", model="m", unit_id="u", event_time=t, latency_ms=1.0)


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


def _exposition() -> bytes:
    from prometheus_client import generate_latest

    cfg = MetricsConfig(window_lengths_s=(60.0,), last_n=10)
    processor = MetricsProcessor(cfg)
    state = PartitionState()
    events: list[PredictionLogged | LabelObserved] = []
    for i in range(80):
        t = T0 + timedelta(seconds=i)
        events.append(
            PredictionLogged(
                prediction_id=f"p{i}",
                model="m",
                version="v1",
                unit_id="u",
                event_time=t,
                prediction=i % 2,
                probabilities={"0": 0.3, "1": 0.7},
                latency_ms=2.0 + i % 5,
                stage_latency_ms={"inference": 1.0},
                error_type="timeout" if i % 17 == 0 else None,
            )
        )
        events.append(LabelObserved(prediction_id=f"p{i}", label=1, event_time=t))
    events.append(
        PredictionLogged(
            prediction_id="r1",
            model="m",
            version="v1",
            unit_id="u",
            event_time=T0,
            task="regression",
            prediction=2.5,
            latency_ms=1.0,
        )
    )
    events.append(LabelObserved(prediction_id="r1", label=3.0, event_time=T0))
    events.append(LabelObserved(prediction_id="orphan", label=1, event_time=T0))
    for e in events:
        state, _ = processor.handle(e, state, e.event_time.timestamp())
    state.clamped["prediction"] = 1  # every family present
    state.overflow["prediction"] = 1
    collector = MetricsCollector()
    collector.view = build_view(processor, [state])
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)


def test_exposition_passes_promtool_lint() -> None:
    # Before: model_latency_quantile_seconds and model_label_delay_seconds were gauges
    # with a "quantile" label: `promtool check metrics` failed.
    import subprocess

    text = _exposition()
    assert b"model_latency_quantile_seconds{" in text and b"model_label_delay_seconds{" in text
    done = subprocess.run(
        ["/usr/bin/promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_regression_predictions_are_in_model_predictions_total() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, s.labels.get("predicted_class"))
        for family in text_string_to_metric_families(_exposition().decode())
        for s in family.samples
    }
    assert ("model_predictions_total", "") in samples
    assert ("model_predictions_total", "1") in samples
