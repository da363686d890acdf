"""The SDK on a real broker: events arrive intact; a broker outage never reaches the
caller, buffered events arrive once the broker is back (exactly once), and a full
buffer drops and counts. The outage uses a private broker so the shared one stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import ensure_topics
from modelguard.contracts.codec import decode_event
from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.telemetry import MODELGUARD_SDK_INFERENCE_DURATION_SECONDS
from modelguard.contracts.topics import Topics
from modelguard.sdk import EventSDK, InvalidEventError
from modelguard_devstack.servers import KafkaServer
from tests.support.kafka import read_all
from tests.support.ports import free_port, private_kafka_config
from tests.support.servers import Servers

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_events_arrive_intact_with_keys_and_headers(servers: Servers, topics: Topics) -> None:
    registry = CollectorRegistry()
    sdk = EventSDK(servers.kafka_bootstrap, topics=topics, registry=registry)
    sent = []
    for i in range(200):
        with sdk.timer("fraud", "v1") as timer, timer.stage("inference"):
            pass
        pid = sdk.emit_prediction(
            model="fraud",
            version="v1",
            unit_id=f"u{i % 7}",
            features={"amount": i * 1.5, "country": "DE" if i % 2 else "US", "n": i},
            prediction=i % 2,
            probabilities={"0": 0.5, "1": 0.5},
            timer=timer,
            event_time=T0 + timedelta(seconds=i),
        )
        sent.append(pid)
        sdk.emit_label(prediction_id=pid, label=(i + 1) % 2, model="fraud", event_time=T0)
    sdk.emit_exposure(
        ExposureLogged(
            event_id="e1", experiment_id="x1", unit_id="u1", arm="v1", model="fraud", event_time=T0
        )
    )
    with pytest.raises(InvalidEventError, match=r"features\.amount: Input should be a finite"):
        sdk.emit_prediction(
            model="fraud",
            version="v1",
            features={"amount": float("inf")},
            prediction=1,
            latency_ms=1.0,
        )
    with pytest.raises(InvalidEventError, match="latency_ms"):
        sdk.emit_prediction(model="fraud", version="v1", prediction=1)
    assert sdk.close(30) == 0
    assert len(set(sent)) == 200

    preds = read_all(servers.kafka_bootstrap, topics.predictions, 200)
    labels = read_all(servers.kafka_bootstrap, topics.labels, 200)
    exposures = read_all(servers.kafka_bootstrap, topics.exposures, 1)
    decoded = {m.key().decode(): decode_event(PredictionLogged, m.value()) for m in preds}
    assert sorted(decoded) == sorted(sent)
    first = decoded[sent[3]]
    assert (first.unit_id, first.features, first.prediction) == (
        "u3",
        {"amount": 4.5, "country": "DE", "n": 3},
        1,
    )
    assert first.stage_latency_ms is not None and "inference" in first.stage_latency_ms
    assert first.event_time == T0 + timedelta(seconds=3)
    assert dict(preds[0].headers())["event_type"] == b"prediction_logged"
    # a label is on the partition of its prediction (same key, same partition count)
    part = {m.key(): m.partition() for m in preds}
    assert all(part[m.key()] == m.partition() for m in labels)
    assert {decode_event(LabelObserved, m.value()).prediction_id for m in labels} == set(sent)
    assert exposures[0].key() == b"u1"
    assert (
        registry.get_sample_value("modelguard_sdk_events_total", {"event_type": "prediction"})
        == 200
    )
    assert (
        registry.get_sample_value(
            "modelguard_sdk_invalid_calls_total", {"event_type": "prediction"}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            f"{MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.name}_count",
            {"model_name": "fraud", "model_version": "v1", "stage": "inference"},
        )
        == 200
    )


@pytest.fixture
def private_kafka(tmp_path: Path, servers: Servers) -> Iterator[KafkaServer]:
    server = KafkaServer(private_kafka_config(tmp_path))
    server.start(timeout=90)
    yield server
    server.stop()


def _emit(sdk: EventSDK, n: int, tag: str) -> tuple[list[str], float]:
    """Emit ``n`` predictions; returns their ids and the slowest call in seconds."""
    ids, slowest = [], 0.0
    for i in range(n):
        t0 = time.perf_counter()
        ids.append(
            sdk.emit_prediction(
                model="fraud",
                version="v1",
                prediction_id=f"{tag}-{i}",
                prediction=1,
                latency_ms=1.0,
                event_time=T0,
            )
        )
        slowest = max(slowest, time.perf_counter() - t0)
    return ids, slowest


def test_broker_outage_buffers_then_delivers_exactly_once(private_kafka: KafkaServer) -> None:
    bootstrap = private_kafka.bootstrap
    topics = Topics(prefix="outage")
    ensure_topics(bootstrap, topics.all(), partitions=3)
    registry = CollectorRegistry()
    sdk = EventSDK(bootstrap, topics=topics, registry=registry, max_buffer=1000)
    small = EventSDK(bootstrap, topics=topics, max_buffer=50)
    try:
        before, _ = _emit(sdk, 100, "before")
        assert sdk.flush(30) == 0

        private_kafka.stop()
        during, slowest = _emit(sdk, 300, "during")  # never raises
        # Not a speed test (a call's cost is measured by benchmarks/bench_sdk.py): an emit
        # that waited for the absent broker would block for librdkafka's timeouts
        # (seconds); 1 s leaves room for a GC pause or a descheduled thread under load.
        assert slowest < 1.0, f"an emit blocked the caller for {slowest:.3f}s"
        # a full buffer drops (and counts) instead of blocking
        _emit(small, 200, "small")
        assert small.dropped == {"prediction": 150}
        assert small.queued["prediction"] == 50
        assert sdk.buffered == 300 and not sdk.delivery_failures

        private_kafka.start(timeout=90)
        assert sdk.flush(60) == 0
        assert small.flush(60) == 0
    finally:
        sdk.close(5)
        small.close(5)
    received = read_all(bootstrap, topics.predictions, 450, timeout=60)
    keys = [m.key().decode() for m in received]
    assert len(keys) == 450 and len(set(keys)) == 450  # no loss, no duplicate
    assert set(before + during) <= set(keys)
    assert sum(k.startswith("small-") for k in keys) == 50
    assert (
        registry.get_sample_value("modelguard_sdk_events_total", {"event_type": "prediction"})
        == 400
    )
    assert not sdk.delivery_failures


def test_undeliverable_events_are_counted_not_raised(servers: Servers) -> None:
    # nothing listens on this port; a short message timeout expires the events
    registry = CollectorRegistry()
    sdk = EventSDK(
        f"127.0.0.1:{free_port()}",
        topics=Topics(prefix="nowhere"),
        registry=registry,
        message_timeout_s=1.0,
    )
    _emit(sdk, 20, "x")
    assert sdk.flush(10) == 0
    sdk.close(1)
    failures = sum(sdk.delivery_failures.values())
    assert failures == 20
    assert (
        registry.get_sample_value(
            "modelguard_sdk_delivery_failures_total",
            {"topic": "nowhere.predictions.v1", "error": "_MSG_TIMED_OUT"},
        )
        == 20
    )


def test_close_is_bounded_idempotent_and_later_emits_are_dropped_not_raised() -> None:
    # A broker that never answers: close() must return after its bounded flush (it
    # purges what is left instead of letting librdkafka flush without bound).
    sdk = EventSDK(
        f"127.0.0.1:{free_port()}",
        topics=Topics(prefix="nowhere"),
        registry=CollectorRegistry(),
        message_timeout_s=60.0,
    )
    _emit(sdk, 5, "c")
    started = time.monotonic()
    assert sdk.close(1) > 0  # undelivered, reported
    assert time.monotonic() - started < 10
    assert sdk.close(1) == 0  # idempotent
    assert sdk.buffered == 0 and sdk.flush(1) == 0
    sdk.emit_prediction(model="fraud", version="v1", prediction=1, latency_ms=1.0)  # no raise
    assert sdk.dropped.get("prediction") == 1
