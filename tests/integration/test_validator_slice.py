"""The first vertical slice on real servers: producer -> Kafka -> validator ->
dead-letter topic + Prometheus counters -> a real Prometheus scrape."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DeadLetter, PredictionLogged, Topics, encode_event
from modelguard_services.validator.app import ValidatorService
from tests.support.kafka import read_all
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers
from tests.support.threads import start_thread

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _valid(i: int, version: str) -> bytes:
    return encode_event(
        PredictionLogged(
            prediction_id=f"p{i}",
            model="fraud",
            version=version,
            unit_id=f"u{i % 7}",
            event_time=T0 + timedelta(seconds=i),
            features={"amount": float(i), "country": "DE"},
            prediction=i % 2,
            probabilities={"0": 0.25, "1": 0.75},
            latency_ms=3.5,
        )
    )


INVALID: list[tuple[bytes, str, str]] = [
    (b"{not json", "not_json", "not valid JSON"),
    (_valid(0, "v1").replace(b'"amount":0.0', b'"amount":NaN'), "invalid", "features.amount"),
    (_valid(0, "v1").replace(b'"latency_ms":3.5', b'"latency_ms":-1'), "invalid", "latency_ms"),
    (b'{"prediction_id": "x"}', "invalid", "model: Field required"),
    (b'{"pad": "' + b"x" * 70_000 + b'"}', "too_large", "limit is 65536"),
]


def test_valid_events_counted_invalid_dead_lettered_and_scraped(
    servers: Servers, topics: Topics, settings: CommonSettings, prometheus: PrometheusHelper
) -> None:
    registry = CollectorRegistry()
    metrics = MetricsServer(registry)
    job_id = prometheus.register(metrics.target)
    service = ValidatorService(settings, registry, group_id=f"g-{topics.prefix}")
    stop = threading.Event()
    worker = start_thread(service.run, stop, name="validator")
    try:
        producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
        n_valid = 60
        for i in range(n_valid):
            producer.produce(
                topics.predictions, key=f"p{i}".encode(), value=_valid(i, "v1" if i < 40 else "v2")
            )
        for j, (raw, _, _) in enumerate(INVALID):
            producer.produce(topics.predictions, key=f"bad{j}".encode(), value=raw)
        assert producer.flush(10) == 0

        letters = read_all(servers.kafka_bootstrap, topics.dead_letter, len(INVALID))
        assert len(letters) == len(INVALID)
        by_key = {m.key(): m for m in letters}
        for j, (raw, kind, fragment) in enumerate(INVALID):
            msg = by_key[f"bad{j}".encode()]
            assert msg.value() == raw  # the original bytes, untouched
            letter = DeadLetter.from_headers(msg.headers())
            assert letter.error_kind == kind
            assert fragment in letter.reason
            assert letter.source_topic == topics.predictions
            assert letter.stage == "validator"
            assert 0 <= letter.source_partition < 3 and letter.source_offset >= 0

        # Each figure is polled, not read once: the scrape that first shows all valid
        # events may predate the last invalid one (another partition), and a wrong
        # figure still fails after the wait with the last result.
        sel = f'job_id="{job_id}"'
        prometheus.wait_for(
            f'sum(modelguard_events_consumed_total{{{sel},outcome="valid"}})',
            lambda r: bool(r) and value(r) == n_valid,
            timeout=60,
        )
        prometheus.wait_for(
            f'sum(modelguard_events_consumed_total{{{sel},outcome="invalid"}})',
            lambda r: bool(r) and value(r) == len(INVALID),
            timeout=60,
        )
        prometheus.wait_for(
            f"sum by (error_kind) (modelguard_dead_letters_total{{{sel}}})",
            lambda r: (
                {x["metric"]["error_kind"]: float(x["value"][1]) for x in r}
                == {"not_json": 1.0, "invalid": 3.0, "too_large": 1.0}
            ),
            timeout=60,
        )
        prometheus.wait_for(
            "sum by (model_version) "
            f'(modelguard_validated_predictions_total{{{sel},model_name="fraud"}})',
            lambda r: (
                {x["metric"]["model_version"]: float(x["value"][1]) for x in r}
                == {"v1": 40.0, "v2": 20.0}
            ),
            timeout=60,
        )
    finally:
        stop.set()
        try:
            worker.join(timeout=60)  # raises what the service raised, or if it still runs
        finally:
            metrics.close()
    assert service.processed == n_valid


def test_restarted_validator_does_not_reprocess_committed_events(
    servers: Servers, topics: Topics, settings: CommonSettings
) -> None:
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    for i in range(10):
        producer.produce(topics.predictions, key=f"p{i}".encode(), value=_valid(i, "v1"))
    producer.flush(10)
    group = f"g-{topics.prefix}"
    first = ValidatorService(settings, CollectorRegistry(), group_id=group)
    assert first.run(threading.Event(), idle_exit_seconds=3.0) == 10
    for i in range(10, 15):
        producer.produce(topics.predictions, key=f"p{i}".encode(), value=_valid(i, "v1"))
    producer.flush(10)
    second = ValidatorService(settings, CollectorRegistry(), group_id=group)
    assert second.run(threading.Event(), idle_exit_seconds=3.0) == 5
    assert json.loads(_valid(1, "v1"))["prediction_id"] == "p1"


def test_the_validator_needs_no_redis(
    servers: Servers, topics: Topics, settings: CommonSettings
) -> None:
    """Issue 11 ("Redis outages"): the validator uses no Redis at all, so a Redis outage
    cannot stop it. Here nothing listens at its Redis URL (port 1) and it still counts
    every event and commits its offsets (a second run reads nothing)."""
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    for i in range(5):
        producer.produce(topics.predictions, key=f"p{i}".encode(), value=_valid(i, "v1"))
    assert producer.flush(10) == 0
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    group = f"g-{topics.prefix}"
    service = ValidatorService(no_redis, CollectorRegistry(), group_id=group)
    assert service.run(threading.Event(), idle_exit_seconds=3.0) == 5
    assert service.commits >= 1
    again = ValidatorService(no_redis, CollectorRegistry(), group_id=group)
    assert again.run(threading.Event(), idle_exit_seconds=3.0) == 0
