"""End to end with the simulator: a version whose accuracy drops shows the drop in
``model_accuracy`` on the exposed endpoint and in a real Prometheus, the healthy version
unaffected. How fast (the freshness target, p99 < 1 s) is measured by
``benchmarks/bench_metrics.py`` (``freshness``), not here: a timed assertion fails on a
loaded machine; the bounds below only keep a lost update from hanging the test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from confluent_kafka import Producer

from modelguard.adapters.kafka import delete_topics
from modelguard.contracts import Topics, encode_event
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.simulation import Scenario, SimulationEngine
from modelguard_services.metrics.app import changelog_topic
from modelguard_services.metrics.settings import MetricsSettings
from tests.support.metrics_service import serving_metrics
from tests.support.prom import PrometheusHelper
from tests.support.servers import Servers
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "metrics-e2e",
            "seed": 4,
            "duration_seconds": 60,
            "rate_per_second": 200,
            "models": [
                {
                    "name": "fraud",
                    "features": {"amount": {"kind": "normal", "mean": 10, "std": 2}},
                    "versions": {"v1": {"accuracy": 0.92}, "v2": {"accuracy": 0.92}},
                    "weights": {"v1": 0.5, "v2": 0.5},
                    "labels": {"fraction": 1.0, "delay_seconds": {"kind": "constant", "value": 1}},
                }
            ],
            "incidents": [
                {
                    "kind": "accuracy_drop",
                    "model": "fraud",
                    "version": "v2",
                    "at": 30,
                    "accuracy": 0.5,
                }
            ],
        }
    )


def _produce(producer: Producer, topics: Topics, events: list[object]) -> None:
    for e in events:
        if isinstance(e, PredictionLogged):
            producer.produce(
                topics.predictions, key=e.prediction_id.encode(), value=encode_event(e)
            )
        elif isinstance(e, LabelObserved):
            producer.produce(topics.labels, key=e.prediction_id.encode(), value=encode_event(e))
        producer.poll(0)
    assert producer.flush(30) == 0


def _exposed(url: str, version: str) -> float | None:
    for line in requests.get(url, timeout=5).text.splitlines():
        if line.startswith("model_accuracy{") and f'model_version="{version}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_accuracy_drop_reaches_the_gauge_and_prometheus(
    servers: Servers, topics: Topics, prometheus: PrometheusHelper
) -> None:
    settings = MetricsSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        topic_prefix=topics.prefix,
        metrics_group_id=f"g-{topics.prefix}",
        metrics_baselines={"fraud": 0.92},
    )
    engine = SimulationEngine(_scenario(), start_time=datetime(2026, 11, 1, tzinfo=UTC))
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap, "linger.ms": 5})
    try:
        with serving_metrics(settings, prometheus) as served:
            job, server = served.job, served.server
            _produce(producer, topics, engine.run_for(30))  # healthy phase
            sel = f'job_id="{job}",model_name="fraud",model_version="v2"'
            healthy = prometheus.wait_for(
                f"model_accuracy{{{sel}}}",
                lambda r: bool(r) and float(r[0]["value"][1]) > 0.85,
                timeout=60,
            )
            assert healthy
            _produce(producer, topics, engine.run_for(30))  # v2 drops to 50% at t=30
            wait_for(
                lambda: (acc := _exposed(server.url, "v2")) is not None and acc < 0.6,
                60,
                "the drop in the exposed model_accuracy",
                progress=lambda: _exposed(server.url, "v2"),
            )
            result = prometheus.wait_for(
                f"model_accuracy{{{sel}}}",
                lambda r: bool(r) and float(r[0]["value"][1]) < 0.6,
                timeout=60,
            )
            assert 0.4 < float(result[0]["value"][1]) < 0.6
            v1 = prometheus.query(f'model_accuracy{{job_id="{job}",model_version="v1"}}')
            assert float(v1[0]["value"][1]) > 0.85  # the healthy version is unaffected
            drop = prometheus.wait_for(
                f'model_accuracy_drop_percent{{job_id="{job}",model_name="fraud"}}',
                lambda r: bool(r) and float(r[0]["value"][1]) > 30,
                timeout=60,
            )
            assert drop
    finally:
        delete_topics(servers.kafka_bootstrap, [changelog_topic(settings)])
    assert not served.worker.is_alive()
