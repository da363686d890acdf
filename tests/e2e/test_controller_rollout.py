"""Progressive rollout on real Kafka and Redis: a good challenger ramps to 100% through
every step; a challenger without metrics is frozen and never promoted.

Metric windows are produced directly (they are the controller's input contract), paced
like a live processor: one window per version per second, event times on the clock. The
ramp is fed as the metrics processor publishes: one partial per source partition (3),
each too small for ``min_samples`` on its own, so it only ramps on merged windows."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from modelguard.core.control import parse_policies
from modelguard.routing import RoutingTableStore
from modelguard_services.controller.app import ControllerService
from tests.integration.test_controller import (
    decisions_on,
    decisions_published,
    partial_window,
    produce,
    running,
    window,
)
from tests.support.servers import Servers
from tests.support.threads import start_thread

pytestmark = pytest.mark.e2e

POLICY = parse_policies(
    """
models:
  fraud:
    max_evidence_age_seconds: 10
    freeze_after_seconds: 3
    guardrails:
      - {name: errors, kind: error_rate, threshold: 0.01, min_samples: 50}
      - {name: accuracy, kind: accuracy_drop, max_drop_percent: 2, min_samples: 50}
    rollout: {steps: [1, 5, 25, 50, 100], hold_seconds: 1.5, min_samples_per_step: 100}
"""
)


@contextmanager
def feeding(
    servers: Servers,
    topics: Topics,
    versions: tuple[str, ...],
    *,
    partials: bool = False,
) -> Iterator[None]:
    """Windows of ``versions`` produced while the block runs, then the feeder stopped."""
    stop = threading.Event()

    def loop() -> None:
        i = 0
        while not stop.is_set():
            t0 = datetime.now(UTC) - timedelta(seconds=i + 1)
            events: list[MetricWindowClosed | DriftSignal] = []
            for v in versions:
                if partials:  # 3 x 40 labelled predictions; min_samples is 50
                    events += [partial_window(i, v, p, t0=t0, n=40) for p in range(3)]
                else:
                    events.append(window(i, v, t0=t0, tag="live"))
            produce(servers.kafka_bootstrap, topics, events)
            i += 1
            stop.wait(0.5)

    worker = start_thread(loop, name="feeder")
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=60)  # raises what the feeder raised (e.g. a failed flush)


@pytest.fixture
def store(redis_client: redis.Redis, redis_keys: RedisKeys) -> RoutingTableStore:
    return RoutingTableStore(redis_client, redis_keys)


def test_good_challenger_ramps_to_100_percent(
    servers: Servers, topics: Topics, settings: CommonSettings, store: RoutingTableStore
) -> None:
    store.write("fraud", {"v1": 0.99, "v2": 0.01}, expected_revision=0, actor="cli:test")
    service = ControllerService(settings, CollectorRegistry(), POLICY, store)
    with running(service), feeding(servers, topics, ("v1", "v2"), partials=True):
        deadline = time.monotonic() + 120  # leaves as soon as promoted
        while time.monotonic() < deadline:
            table = store.read("fraud")
            if table is not None and table.weights.get("v2") == 1.0:
                break
            time.sleep(0.1)
    history = [t.weights.get("v2") for t in store.history("fraud")]
    assert history == [0.01, 0.05, 0.25, 0.5, 1.0]
    decisions = decisions_on(servers.kafka_bootstrap, topics, 4)
    assert [d.action for d in decisions] == ["ramp", "ramp", "ramp", "promote"]
    gaps = [(b.decided_at - a.decided_at).total_seconds() for a, b in itertools.pairwise(decisions)]
    assert all(g >= 1.5 for g in gaps), gaps  # hold time respected at every step
    # judged on merged windows: every healthy verdict saw the 3 partials' 120 samples
    for d in decisions:
        assert {e["samples"] for e in d.evidence if e["status"] == "healthy"} == {120}
    assert service.source_partitions == 3


def test_challenger_without_metrics_is_frozen_never_promoted(
    servers: Servers, topics: Topics, settings: CommonSettings, store: RoutingTableStore
) -> None:
    store.write("fraud", {"v1": 0.95, "v2": 0.05}, expected_revision=0, actor="cli:test")
    service = ControllerService(settings, CollectorRegistry(), POLICY, store)
    with running(service), feeding(servers, topics, ("v1",)):  # v2 never reports metrics
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not service.decisions:
            time.sleep(0.1)
        time.sleep(4.0)  # well past a hold time (wall clock): nothing else may happen
    decisions = decisions_published(servers.kafka_bootstrap, topics)
    assert [d.action for d in decisions] == ["freeze"]
    assert "no metric windows" in decisions[0].reason
    table = store.read("fraud")
    assert table is not None and table.revision == 1
    assert table.weights == {"v1": 0.95, "v2": 0.05}
