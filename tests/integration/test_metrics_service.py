"""The metrics processor on real Kafka and Prometheus: windows, gauges, dead letters,
and a kill -9 mid-stream whose restart equals an offline recomputation."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer, TopicPartition

from modelguard.contracts import (
    DeadLetter,
    LabelObserved,
    MetricWindowClosed,
    PredictionLogged,
    Topics,
    encode_event,
)
from modelguard.core.metrics import Aggregate
from modelguard_services.metrics.app import changelog_topic, decode_state, read_changelog
from modelguard_services.metrics.settings import MetricsSettings
from tests.support.kafka import read_all
from tests.support.metrics_service import metrics_settings_on, serving_metrics, spawn_metrics
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
TICK = timedelta(days=1)


@dataclass(frozen=True)
class Served:
    """One generated prediction and (maybe) its label: the oracle's view."""

    pid: str
    model: str
    version: str
    t_pred: float  # seconds after T0
    prediction: int
    p1: float
    label: int | None
    t_label: float


def generate(
    seed: int, n: int, *, accuracy: dict[str, float], spacing_s: float = 0.01, models: int = 1
) -> list[Served]:
    """Seeded traffic: versions with the given accuracy; 90% of predictions labelled
    0-3 s later (the simulator issue's generator is not available yet)."""
    rng = np.random.default_rng(seed)
    versions = sorted(accuracy)
    out = []
    for i in range(n):
        version = versions[i % len(versions)]
        y = int(rng.integers(0, 2))
        right = rng.random() < accuracy[version]
        yhat = y if right else 1 - y
        p1 = float(np.clip(rng.normal(0.75 if yhat else 0.25, 0.1), 0.01, 0.99))
        labelled = rng.random() < 0.9
        t = i * spacing_s
        out.append(
            Served(
                pid=f"{seed}-{i}",
                model=f"m{i % models}" if models > 1 else "fraud",
                version=version,
                t_pred=t,
                prediction=yhat,
                p1=p1,
                label=y if labelled else None,
                t_label=t + float(rng.uniform(0, 3)),
            )
        )
    return out


def prediction_event(s: Served) -> PredictionLogged:
    return PredictionLogged(
        prediction_id=s.pid,
        model=s.model,
        version=s.version,
        unit_id=f"u{s.pid}",
        event_time=T0 + timedelta(seconds=s.t_pred),
        prediction=s.prediction,
        probabilities={"0": 1 - s.p1, "1": s.p1},
        latency_ms=4.0,
    )


def label_event(s: Served) -> LabelObserved:
    assert s.label is not None
    return LabelObserved(
        prediction_id=s.pid, label=s.label, event_time=T0 + timedelta(seconds=s.t_label)
    )


def produce(bootstrap: str, topics: Topics, traffic: list[Served], *, partitions: int = 3) -> None:
    """Predictions in time order, labels in label-time order (both keyed by prediction
    id), then a far-future tick on every partition of both topics to close all windows."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})

    def send(topic: str, key: str, value: bytes, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    producer.produce(topic, key=key.encode(), value=value)
                else:
                    producer.produce(topic, key=key.encode(), value=value, partition=partition)
                producer.poll(0)
                return
            except BufferError:
                producer.poll(0.1)

    for s in traffic:
        send(topics.predictions, s.pid, encode_event(prediction_event(s)))
    for s in sorted((s for s in traffic if s.label is not None), key=lambda s: s.t_label):
        send(topics.labels, s.pid, encode_event(label_event(s)))
    end = max(s.t_label for s in traffic)
    for p in range(partitions):
        tick = Served(f"tick-{p}", "tick", "v0", end + TICK.total_seconds(), 0, 0.5, 0, 0.0)
        tick = Served(**{**tick.__dict__, "t_label": tick.t_pred})
        send(topics.predictions, tick.pid, encode_event(prediction_event(tick)), p)
        send(topics.labels, tick.pid, encode_event(label_event(tick)), p)
    assert producer.flush(30) == 0


def window_oracle(traffic: list[Served], length: float, ttl: float) -> dict[Any, dict[str, float]]:
    """Per (version, window start): predictions, labelled, correct and expired,
    computed directly from the generated events (no processor code)."""
    out: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    epoch = T0.timestamp()

    def start(t: float) -> datetime:
        return datetime.fromtimestamp((epoch + t) // length * length, UTC)

    for s in traffic:
        out[(s.version, start(s.t_pred))]["n_predictions"] += 1
        if s.label is None:
            out[(s.version, start(s.t_pred + ttl))]["n_expired"] += 1
        else:
            w = out[(s.version, start(max(s.t_pred, s.t_label)))]
            w["n_labelled"] += 1
            w["n_correct"] += float(s.label == s.prediction)
    return out


def collect_windows(bootstrap: str, topics: Topics, expected_min: int) -> list[MetricWindowClosed]:
    msgs = read_all(bootstrap, topics.metric_windows, expected_min, timeout=30)
    return [MetricWindowClosed.model_validate_json(m.value()) for m in msgs]


def merged_tumbling(events: list[MetricWindowClosed]) -> dict[Any, Aggregate]:
    """Merge per-partition partials; replayed event-time windows (same event_id) must be
    identical (count windows depend on arrival order, so a replay may differ)."""
    by_id: dict[str, MetricWindowClosed] = {}
    for e in events:
        if e.event_id in by_id and e.window.kind == "tumbling":
            a = by_id[e.event_id].model_dump(exclude={"emitted_at"})
            b = e.model_dump(exclude={"emitted_at"})
            differing = {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "aggregate"}
            agg_a, agg_b = a["aggregate"] or {}, b["aggregate"] or {}
            differing |= {
                f"aggregate.{k}": (agg_a.get(k), agg_b.get(k))
                for k in agg_a.keys() | agg_b.keys()
                if agg_a.get(k) != agg_b.get(k)
            }
            assert not differing, f"replayed window {e.event_id} differs: {differing}"
        by_id[e.event_id] = e
    merged: dict[Any, Aggregate] = defaultdict(Aggregate)
    for e in by_id.values():
        if e.model != "tick" and e.window.kind == "tumbling":
            assert e.aggregate is not None
            merged[(e.version, e.window_start)].merge(Aggregate.from_dict(dict(e.aggregate)))
    return merged


def assert_matches_oracle(
    merged: dict[Any, Aggregate], oracle: dict[Any, dict[str, float]]
) -> None:
    assert set(merged) == set(oracle)
    for key, want in oracle.items():
        agg = merged[key]
        got = {
            "n_predictions": agg.n_predictions,
            "n_labelled": agg.n_labelled,
            "n_correct": agg.n_correct,
            "n_expired": agg.n_expired,
        }
        assert got == {k: want.get(k, 0.0) for k in got}, key


@pytest.fixture
def metrics_settings(servers: Servers, topics: Topics) -> Iterator[MetricsSettings]:
    yield from metrics_settings_on(
        servers, topics, metrics_checkpoint_interval_s=0.5, metrics_baselines={"fraud": 0.9}
    )


def test_service_publishes_windows_exposes_gauges_and_dead_letters_bad_input(
    servers: Servers,
    topics: Topics,
    metrics_settings: MetricsSettings,
    prometheus: PrometheusHelper,
) -> None:

    traffic = generate(11, 3000, accuracy={"v1": 0.9, "v2": 0.6}, spacing_s=0.05)
    traffic += generate(12, 200, accuracy={"v7": 0.8}, spacing_s=0.75, models=2)  # unknown models
    produce(servers.kafka_bootstrap, topics, traffic)
    bad = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    bad.produce(topics.predictions, key=b"bad-1", value=b"{not json")
    bad.produce(topics.labels, key=b"bad-2", value=b'{"prediction_id": "x", "label": NaN}')
    bad.produce(
        topics.labels,
        key=b"bad-3",
        value=b'{"prediction_id": "nobody", "label": 1, "event_time": "2026-11-01T00:00:01Z"}',
    )  # valid: a label without prediction
    assert bad.flush(10) == 0

    with serving_metrics(metrics_settings, prometheus) as served:
        job = served.job
        letters = read_all(servers.kafka_bootstrap, topics.dead_letter, 2)
        assert sorted(m.key() for m in letters) == [b"bad-1", b"bad-2"]
        assert {DeadLetter.from_headers(m.headers()).stage for m in letters} == {"metrics"}

        sel = f'job_id="{job}",model_name="fraud"'
        want = {
            version: float(
                np.mean(
                    [
                        s.label == s.prediction
                        for s in traffic
                        if s.version == version and s.label is not None
                    ]
                )
            )
            for version in ("v1", "v2")
        }

        def settled(result: list[dict[str, Any]]) -> bool:
            # a scrape may land while the backlog is still being folded in: wait until the
            # gauges show the whole input (they must reach it exactly)
            got = {r["metric"]["model_version"]: float(r["value"][1]) for r in result}
            return got.keys() == want.keys() and all(
                got[v] == pytest.approx(w, abs=1e-9) for v, w in want.items()
            )

        prometheus.wait_for(f"model_accuracy{{{sel}}}", settled, timeout=60)
        drop = prometheus.wait_for(
            f"model_accuracy_drop_percent{{{sel}}}", lambda r: len(r) == 1, timeout=30
        )
        assert value(drop) > 20  # v2 (about 60%) against the declared baseline 0.9
        assert value(prometheus.query(f"model_accuracy_degraded{{{sel}}}")) == 1.0
        # model_concept_drift_detected has one owner, the drift processor (ADR 0008)
        assert prometheus.query(f'model_concept_drift_detected{{job_id="{job}"}}') == []
        unknown = prometheus.wait_for(
            f'sum(model_labels_joined_total{{job_id="{job}",model_name=~"m0|m1"}})',
            lambda r: (
                bool(r)
                and value(r)
                == sum(1 for s in traffic if s.model != "fraud" and s.label is not None)
            ),
            timeout=30,
        )
        assert unknown
        # polled: the unlabelled predictions may still be coming in once accuracy settled
        v1_predictions = sum(1 for s in traffic if s.version == "v1")
        hist = prometheus.wait_for(
            f'model_inference_duration_seconds_bucket{{{sel},model_version="v1",le="0.01"}}',
            lambda r: bool(r) and value(r) >= v1_predictions,
            timeout=60,
        )
        assert value(hist) == v1_predictions
        orphans = prometheus.wait_for(
            f'model_orphan_labels_total{{job_id="{job}"}}', lambda r: bool(r), timeout=30
        )
        assert value(orphans) == 1.0

        windows = collect_windows(servers.kafka_bootstrap, topics, 1)
        deadline = time.monotonic() + 120  # leaves as soon as every window is there
        oracle = window_oracle([s for s in traffic if s.model == "fraud"], 60.0, 3600.0)
        while time.monotonic() < deadline:
            merged = merged_tumbling([w for w in windows if w.model == "fraud"])
            if set(merged) == set(oracle):
                break
            time.sleep(0.5)
            windows = collect_windows(servers.kafka_bootstrap, topics, len(windows) + 1)
        assert_matches_oracle(merged, oracle)
    assert not served.worker.is_alive()


def test_kill_9_mid_stream_then_restart_equals_offline_recomputation(
    servers: Servers, topics: Topics, metrics_settings: MetricsSettings
) -> None:
    traffic = generate(21, 30_000, accuracy={"v1": 0.85, "v2": 0.7}, spacing_s=0.01)
    produce(servers.kafka_bootstrap, topics, traffic)
    n_events = len(traffic) + sum(1 for s in traffic if s.label is not None) + 6
    changelog = changelog_topic(metrics_settings)
    group = metrics_settings.metrics_group_id
    # the processes keep 500 predictions per version and checkpoint every 0.3 s
    restarted = metrics_settings.model_copy(
        update={"metrics_last_n": 500, "metrics_checkpoint_interval_s": 0.3}
    )

    first = spawn_metrics(restarted)
    try:
        deadline = time.monotonic() + 120  # a process start and group join, under load
        snapshots: dict[int, bytes] = {}
        while time.monotonic() < deadline and len(snapshots) < 3:
            time.sleep(0.2)
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            try:
                snapshots = read_changelog(servers.kafka_bootstrap, changelog, group, timeout=5)
            except Exception:
                snapshots = {}
        assert len(snapshots) == 3, "no checkpoint of every partition within 120 s"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    checkpointed = sum(
        sum(decode_state(raw).offsets.values())
        for raw in read_changelog(servers.kafka_bootstrap, changelog, group).values()
    )
    assert 0 < checkpointed < n_events, "the kill must land mid-stream"

    second = spawn_metrics(restarted, "--idle-exit", "4")
    _, err = second.communicate(timeout=180)
    assert second.returncode == 0, err.decode()[-2000:]

    final = read_changelog(servers.kafka_bootstrap, changelog, group)
    states = [decode_state(raw) for raw in final.values()]
    assert sum(sum(s.offsets.values()) for s in states) == n_events
    assert sum(sum(s.duplicates.values()) for s in states) == 0
    assert sum(sum(s.late.values()) for s in states) == 0
    windows = collect_windows(servers.kafka_bootstrap, topics, 1)
    assert_matches_oracle(merged_tumbling(windows), window_oracle(traffic, 60.0, 3600.0))
    # the consumer group's committed offsets follow the checkpoints
    from confluent_kafka import Consumer

    probe = Consumer({"bootstrap.servers": servers.kafka_bootstrap, "group.id": group})
    committed = probe.committed(
        [TopicPartition(t, p) for t in (topics.predictions, topics.labels) for p in range(3)],
        timeout=10,
    )
    probe.close()
    assert sum(tp.offset for tp in committed) == n_events
