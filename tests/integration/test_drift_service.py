"""The drift service on real Kafka, Redis and Prometheus: references shared through
Redis, bad input dead-lettered, signals on the drift topic, metrics scraped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.drift_store import ReferenceStore
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DeadLetter, DriftSignal, PredictionLogged, Topics, encode_event
from modelguard.contracts.codec import decode_event
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.drift import DriftConfig
from modelguard.core.drift.reference import ReferenceProfile, build_profile
from modelguard_services.drift.app import DriftService
from tests.support.events import T0, prediction_at
from tests.support.kafka import read_all
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


def _reference(seed: int, model: str = "fraud", version: str | None = "v1") -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    n = 4000
    return build_profile(
        {
            "amount": list(rng.normal(100, 15, n)),
            "age": [int(a) for a in rng.integers(18, 80, n)],
            "country": list(rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])),
        },
        model=model,
        version=version,
        source="test",
    )


def test_reference_store_versions_and_first_writer_wins(
    redis_client: redis.Redis, redis_keys: RedisKeys
) -> None:
    store = ReferenceStore(redis_client, redis_keys.prefix)
    assert store.resolve("fraud", "v1") is None
    model_wide = _reference(1, version=None)
    first = store.publish(model_wide)
    assert first.installed and first.revision == 1
    assert store.resolve("fraud", "v1") == model_wide  # falls back to the model's reference
    learned_a, learned_b = _reference(2), _reference(3)
    a = store.publish(learned_a, only_if_absent=True)
    b = store.publish(learned_b, only_if_absent=True)  # a second worker, later
    assert a.installed and not b.installed and b.reference_id == learned_a.reference_id
    assert store.resolve("fraud", "v1") == learned_a
    again = store.publish(learned_a)  # same content: no new revision
    assert not again.installed and again.revision == 1
    replaced = store.publish(learned_b)
    assert replaced.installed and replaced.revision == 2
    assert store.history("fraud", "v1") == [learned_b.reference_id, learned_a.reference_id]
    assert store.load_id("fraud", "v1", learned_a.reference_id) == learned_a


def _event(rng: np.random.Generator, i: int, shift: float) -> PredictionLogged:
    p1 = float(rng.uniform(0.05, 0.95))
    features = {
        "amount": float(rng.normal(100 + shift, 15)),
        "age": int(rng.integers(18, 80)),
        "country": str(rng.choice(["DE", "FR", "US"], p=[0.5, 0.3, 0.2])),
    }
    probabilities = {"0": 1 - p1, "1": p1}
    return prediction_at(
        i,
        "p",
        unit_id=f"u{i % 50}",
        features=features,
        prediction=int(p1 > 0.5),
        probabilities=probabilities,
    )


@pytest.fixture
def service_thread(
    settings: CommonSettings, topics: Topics, tmp_path: Path
) -> Iterator[tuple[DriftService, MetricsServer]]:
    registry = CollectorRegistry()
    metrics = MetricsServer(registry)
    service = DriftService(
        settings,
        registry,
        config=DriftConfig(window_events=1500, warmup_events=1500),
        group_id=f"g-{topics.prefix}",
        report_dir=tmp_path / "reports",
        reference_refresh_seconds=0.5,
    )
    stop = threading.Event()
    worker = start_thread(service.run, stop, name="drift")
    yield service, metrics
    stop.set()
    try:
        worker.join(timeout=60)  # raises what the service raised, or if it still runs
    finally:
        metrics.close()


def test_drifted_feature_signals_and_metrics_quiet_features_stay_quiet(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    prometheus: PrometheusHelper,
    service_thread: tuple[DriftService, MetricsServer],
    tmp_path: Path,
) -> None:
    reference = _reference(7)
    ReferenceStore(redis_client, settings.redis_prefix).publish(reference)
    service, metrics = service_thread
    job = prometheus.register(metrics.target)
    rng = np.random.default_rng(11)
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    # one partition: a count window is one partition's (ADR 0015)
    for i in range(1500):  # one quiet window, then one with amount shifted by 0.6 sigma
        producer.produce(
            topics.predictions,
            key=f"p{i}".encode(),
            value=encode_event(_event(rng, i, 0.0)),
            partition=0,
        )
    assert producer.flush(10) == 0
    wait_for(
        lambda: service.processed >= 1500,
        120,
        "the quiet window handled before the shifted one is produced",
        progress=lambda: service.processed,
    )
    for i in range(1500, 3000):
        producer.produce(
            topics.predictions,
            key=f"p{i}".encode(),
            value=encode_event(_event(rng, i, 9.0)),
            partition=0,
        )
    bad = [b"{oops", b'{"prediction_id": "x", "model": "fraud"}']
    for j, raw in enumerate(bad):
        producer.produce(topics.predictions, key=f"bad{j}".encode(), value=raw)
    assert producer.flush(10) == 0

    sel = f'job_id="{job}",model_name="fraud",model_version="v1"'
    prometheus.wait_for(
        f"model_data_drift_detected{{{sel}}}", lambda r: bool(r) and value(r) == 1.0, timeout=60
    )
    # the sequential detectors may flag the drift before the window closes: the window's
    # verdict (drifted share, per-feature statistics) follows at its close
    prometheus.wait_for(
        f"model_drifted_columns_ratio{{{sel}}}",
        lambda r: bool(r) and value(r) == pytest.approx(1 / 3),
        timeout=60,
    )
    psi = {
        r["metric"]["feature"]: float(r["value"][1])
        for r in prometheus.wait_for(
            f"psi_score{{{sel}}}",
            lambda r: any(
                x["metric"]["feature"] == "amount" and float(x["value"][1]) > 0.2 for x in r
            ),
            timeout=30,
        )
    }
    assert psi["amount"] > 0.2 and psi["age"] < 0.1 and psi["country"] < 0.1
    # polled, not read once: a scrape may fall between two gauges' updates, and the two
    # bad records (other partitions) may be handled after the window closed
    ks = {
        r["metric"]["feature"]: float(r["value"][1])
        for r in prometheus.wait_for(
            f"ks_statistic{{{sel}}}",
            lambda r: any(
                x["metric"]["feature"] == "amount" and float(x["value"][1]) > 0.15 for x in r
            ),
            timeout=60,
        )
    }
    assert ks["amount"] > 0.15 and ks["age"] < 0.06
    flags = {
        r["metric"]["feature"]: float(r["value"][1])
        for r in prometheus.wait_for(
            f"model_feature_drift_detected{{{sel}}}",
            lambda r: (
                {x["metric"]["feature"]: float(x["value"][1]) for x in r}.get("amount") == 1.0
            ),
            timeout=60,
        )
    }
    assert flags == {"amount": 1.0, "age": 0.0, "country": 0.0}
    prometheus.wait_for(
        f'sum(modelguard_dead_letters_total{{job_id="{job}"}})',
        lambda r: bool(r) and value(r) >= 2.0,
        timeout=60,
    )
    dead = prometheus.query(f'sum(modelguard_dead_letters_total{{job_id="{job}"}})')
    assert value(dead) == 2.0

    # signals on Kafka: two windows x (3 features + dataset), plus the alarms
    msgs = read_all(servers.kafka_bootstrap, topics.drift_signals, expected=service.signals_sent)
    assert len(msgs) == service.signals_sent >= 8
    signals = [decode_event(DriftSignal, m.value()) for m in msgs]
    assert all(m.key() == b"fraud" for m in msgs)
    assert all(s.reference_version == reference.reference_id for s in signals)
    window = {(s.feature, s.window_start): s for s in signals if s.test in ("ks", "chi_square")}
    amount = sorted(
        (s for (f, _), s in window.items() if f == "amount"), key=lambda s: s.window_start
    )
    assert [s.drift_detected for s in amount] == [False, True]
    assert amount[1].severity >= 2 and amount[1].window_start == T0 + timedelta(seconds=1500)
    assert not any(s.drift_detected for (f, _), s in window.items() if f in ("age", "country"))
    assert {s.feature for s in signals if s.drift_detected and s.kind == "data"} == {"amount"}
    letters = read_all(servers.kafka_bootstrap, topics.dead_letter, expected=2)
    assert {DeadLetter.from_headers(m.headers()).stage for m in letters} == {"drift"}
    report = (tmp_path / "reports" / "fraud-v1.txt").read_text()
    assert "Dataset drift: YES" in report and "amount" in report
    assert (tmp_path / "reports" / "fraud-v1.html").read_text().startswith("<!doctype html>")
