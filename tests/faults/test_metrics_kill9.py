"""kill -9 of the metrics service at seeded random points, three times, with labels
arriving after the label TTL (issue 11 items 7, 8): the final windows equal an offline
recomputation with the pure core's in-memory driver, and no window id is published
twice with different content."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from modelguard.contracts import LabelObserved, PredictionLogged, Topics, encode_event
from modelguard.core.metrics import Aggregate, PartitionState, to_event
from modelguard.core.metrics.processor import run
from modelguard_services.metrics.app import changelog_topic, decode_state, read_changelog
from modelguard_services.metrics.settings import MetricsSettings
from tests.integration.test_metrics_service import collect_windows, merged_tumbling
from tests.support.metrics_service import metrics_settings_on, spawn_metrics
from tests.support.servers import Servers

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
PARTITIONS = 3
SEED = 20261201


@pytest.fixture
def metrics_settings(servers: Servers, topics: Topics) -> Iterator[MetricsSettings]:
    yield from metrics_settings_on(
        servers, topics, metrics_last_n=500, metrics_label_ttl_s=5.0, metrics_orphan_grace_s=5.0
    )


Record = tuple[str, int, PredictionLogged | LabelObserved]


def traffic(rng: np.random.Generator, n: int) -> list[Record]:
    """Predictions 10 ms apart; 90% labelled 0-8 s later (TTL 5 s: ~a third too late),
    a far-future tick per partition at the end. (topic kind, partition, event)."""
    preds: list[Record] = []
    labels: list[tuple[float, Record]] = []
    for i in range(n):
        version = ("v1", "v2")[i % 2]
        y = int(rng.integers(0, 2))
        yhat = y if rng.random() < (0.85 if version == "v1" else 0.7) else 1 - y
        p1 = float(np.clip(rng.normal(0.75 if yhat else 0.25, 0.1), 0.01, 0.99))
        t = T0 + timedelta(seconds=i * 0.01)
        pid = f"k9-{i}"
        part = i % PARTITIONS
        preds.append(
            (
                "p",
                part,
                PredictionLogged(
                    prediction_id=pid,
                    model="fraud",
                    version=version,
                    unit_id=f"u{i}",
                    event_time=t,
                    prediction=yhat,
                    probabilities={"0": 1 - p1, "1": p1},
                    latency_ms=4.0,
                ),
            )
        )
        if rng.random() < 0.9:
            delay = float(rng.uniform(0, 8))
            event = LabelObserved(
                prediction_id=pid, label=y, event_time=t + timedelta(seconds=delay)
            )
            labels.append((i * 0.01 + delay, ("l", part, event)))
    out = preds + [r for _, r in sorted(labels, key=lambda x: x[0])]
    end = T0 + timedelta(days=1)
    for p in range(PARTITIONS):
        tick = PredictionLogged(
            prediction_id=f"tick-{p}",
            model="tick",
            version="v0",
            unit_id="u",
            event_time=end,
            prediction=0,
            latency_ms=1.0,
        )
        out.append(("p", p, tick))
        out.append(("l", p, LabelObserved(prediction_id=f"tick-{p}", label=0, event_time=end)))
    return out


def _produce(bootstrap: str, topics: Topics, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    names = {"p": topics.predictions, "l": topics.labels}
    for kind, part, event in records:
        while True:
            try:
                producer.produce(
                    names[kind],
                    key=event.prediction_id.encode(),
                    value=encode_event(event),
                    partition=part,
                )
                producer.poll(0)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def _offline(settings: MetricsSettings, records: list[Record]) -> dict[Any, Aggregate]:
    """The pure core's driver per partition (events in event-time order, as the
    service's watermark sees them) -> merged tumbling windows."""
    events: list[Any] = []
    for p in range(PARTITIONS):
        mine = [e for _, part, e in records if part == p]
        mine.sort(key=lambda e: (e.event_time, isinstance(e, LabelObserved)))
        _, closed = run(mine, settings.processor_config(), state=PartitionState(partition=p))
        events.extend(to_event(w, T0) for w in closed)
    return merged_tumbling(events)


def test_three_kill_9_at_random_points_equal_the_offline_recomputation(
    servers: Servers, topics: Topics, metrics_settings: MetricsSettings
) -> None:
    rng = np.random.default_rng(SEED)
    records = traffic(rng, 24_000)
    _produce(servers.kafka_bootstrap, topics, records)
    changelog = changelog_topic(metrics_settings)
    group = metrics_settings.metrics_group_id

    def checkpointed() -> int:
        try:
            snaps = read_changelog(servers.kafka_bootstrap, changelog, group, timeout=5)
        except Exception:
            return 0
        return sum(sum(decode_state(raw).offsets.values()) for raw in snaps.values())

    # the group's committed offsets follow each checkpoint and are cheap to read (the
    # changelog is read whole, which takes longer the more checkpoints it holds)
    watcher = Consumer({"bootstrap.servers": servers.kafka_bootstrap, "group.id": group})
    sources = [
        TopicPartition(t, p) for t in (topics.predictions, topics.labels) for p in range(PARTITIONS)
    ]

    def committed() -> int:
        return sum(max(tp.offset, 0) for tp in watcher.committed(sources, timeout=30))

    progress = []
    for _ in range(3):
        proc = spawn_metrics(metrics_settings)
        before = committed()
        deadline = time.monotonic() + 120  # a process start and group join, under load
        # started and checkpointing again (unless an earlier run already finished the input)
        while committed() <= before < len(records):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        # the seeded random point: soon enough that a worker at full speed is mid-stream
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        progress.append(checkpointed())
    assert 0 < progress[0] < len(records), f"the first kill must land mid-stream: {progress}"

    watcher.close()

    final = spawn_metrics(metrics_settings, "--idle-exit", "4")
    _, err = final.communicate(timeout=240)
    assert final.returncode == 0, err.decode()[-2000:]
    assert checkpointed() == len(records)

    windows = collect_windows(servers.kafka_bootstrap, topics, 1)
    got = merged_tumbling(windows)  # asserts: no window id with two different contents
    want = _offline(metrics_settings, records)
    assert set(got) == set(want)
    for key, agg in want.items():
        assert got[key].to_dict() == agg.to_dict(), key
