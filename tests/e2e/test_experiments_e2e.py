"""Experiments end to end on real Kafka, Redis and Prometheus.

Traffic: the routing client (issue 3) assigns units from the routing tables the registry
wrote and emits exposures; outcomes are drawn per arm with known conversion rates
(seeded); both go through Kafka to the experiments processor, which publishes analyses
and writes bandit weights back to Redis through the routing table writer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, decode_event, encode_event
from modelguard.contracts.experiments import (
    ExperimentAnalysis,
    ExperimentKeys,
    ExposureLogged,
    OutcomeObserved,
)
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.experiments.registry import ExperimentRegistry
from modelguard.routing.client import RoutingClient
from modelguard.routing.store import RoutingTableStore
from modelguard_services.experiments.app import ExperimentsService
from tests.support.kafka import read_all
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers

pytestmark = pytest.mark.e2e


def _spec(eid: str, model: str, arms: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "experiment_id": eid,
        "model": model,
        "control": arms[0],
        "treatments": arms[1:],
        "split": {a: 1 / len(arms) for a in arms},
        "primary_metric": "conversion",
        "min_sample_size": 300,
        "planned_units_per_arm": 1000,
        **kw,
    }


class Traffic:
    """Assign units with the routing client; produce exposures and outcomes to Kafka."""

    def __init__(
        self,
        servers: Servers,
        topics: Topics,
        client: redis.Redis,
        keys: RedisKeys,
        models: list[str],
    ) -> None:
        self.exposures: list[ExposureLogged] = []
        self.router = RoutingClient(client, keys, models=models, exposures=self.exposures.append)
        self.router.start()
        self.producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
        self.topics = topics

    def run(
        self,
        model: str,
        units: range,
        rates: dict[str, float],
        rng: np.random.Generator,
        *,
        drop: dict[str, float] | None = None,
    ) -> list[tuple[bytes, bytes, str]]:
        """Serve ``units``; returns the produced records (topic, key, value) for replays."""
        sent = []
        for u in units:
            unit = f"{model}-u{u}"
            arm = self.router.version_for(model, unit)
            exposure = self.exposures.pop()
            assert exposure.arm == arm
            if drop and rng.random() < drop.get(arm, 0.0):
                continue  # the injected logging bug: this exposure is lost
            sent.append((self.topics.exposures, unit.encode(), encode_event(exposure)))
            if rng.random() < rates[arm]:
                outcome = OutcomeObserved(
                    event_id=f"o-{unit}",
                    experiment_id=exposure.experiment_id,
                    unit_id=unit,
                    metric="conversion",
                    value=1.0,
                    event_time=exposure.event_time,
                )
                sent.append((self.topics.outcomes, unit.encode(), encode_event(outcome)))
        self.send(sent)
        return sent

    def send(self, records: list[tuple[str, bytes, bytes]]) -> None:
        for topic, key, val in records:
            self.producer.produce(topic, key=key, value=val)
            self.producer.poll(0)
        assert self.producer.flush(15) == 0

    def close(self) -> None:
        self.router.close()


def _registry(client: redis.Redis, keys: RedisKeys) -> ExperimentRegistry:
    return ExperimentRegistry(client, ExperimentKeys(keys.prefix), RoutingTableStore(client, keys))


def test_winner_aa_and_srm_with_restart_dedup_and_metrics(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
    prometheus: PrometheusHelper,
) -> None:
    reg = _registry(redis_client, redis_keys)
    plans = {
        "lift": ("m-lift", {"v1": 0.10, "v2": 0.22}, None),
        "aa": ("m-aa", {"v1": 0.15, "v2": 0.15}, None),
        "srm": ("m-srm", {"v1": 0.10, "v2": 0.22}, {"v2": 0.2}),
    }
    for eid, (model, _, _) in plans.items():
        reg.create(_spec(eid, model, ["v1", "v2"]), actor="e2e")
        reg.start(eid, actor="e2e")
    traffic = Traffic(servers, topics, redis_client, redis_keys, [p[0] for p in plans.values()])
    rng = np.random.default_rng(7)
    first: list[tuple[str, bytes, bytes]] = []
    try:
        for model, rates, drop in plans.values():
            first += traffic.run(model, range(0, 1500), rates, rng, drop=drop)
        group = f"g-{topics.prefix}"
        one = ExperimentsService(
            settings, CollectorRegistry(), group_id=group, analysis_interval=0.5
        )
        assert one.run(threading.Event(), idle_exit_seconds=3.0) == len(first)

        # second life: new traffic, every first-phase record delivered again, and junk
        for model, rates, drop in plans.values():
            traffic.run(model, range(1500, 4000), rates, rng, drop=drop)
        traffic.send(first[:2000])
        traffic.send(
            [
                (topics.outcomes, b"x", b"{not json"),
                (topics.exposures, b"y", b'{"experiment_id": "lift"}'),
            ]
        )
    finally:
        traffic.close()
    registry = CollectorRegistry()
    metrics = MetricsServer(registry)
    job = prometheus.register(metrics.target)
    two = ExperimentsService(settings, registry, group_id=group, analysis_interval=0.5)
    stop = threading.Event()
    worker = threading.Thread(target=two.run, args=(stop,), daemon=True)
    worker.start()
    try:
        prometheus.wait_for(
            f'sum(experiment_arm_units{{job_id="{job}",experiment_id="lift"}})',
            lambda r: bool(r) and value(r) == 4000,
            timeout=60,
        )
        dupes = prometheus.query(
            f'sum(experiment_events_total{{job_id="{job}",outcome=~".*duplicate"}})'
        )
        assert value(dupes) >= 2000 - 1  # the replayed records, counted once each
    finally:
        stop.set()
        worker.join(timeout=20)
        metrics.close()

    latest: dict[str, ExperimentAnalysis] = {a.experiment_id: a for a in two.analyses}
    lift, aa, srm = latest["lift"], latest["aa"], latest["srm"]
    assert lift.total_units == 4000
    assert lift.recommendation == "promote" and lift.winner == "v2", lift.reason
    assert not lift.srm_detected
    assert aa.recommendation == "continue" and aa.winner is None, aa.reason
    assert srm.srm_detected and srm.frozen and srm.recommendation == "continue"
    assert srm.srm_p_value is not None and srm.srm_p_value < 0.001
    # the controller's view: analysis events on Kafka, keyed by model
    msgs = read_all(servers.kafka_bootstrap, topics.experiment_analyses, len(two.analyses) - 1)
    events = [decode_event(ExperimentAnalysis, m.value()) for m in msgs]
    assert {m.key() for m in msgs} >= {b"m-lift", b"m-aa", b"m-srm"}
    assert any(e.recommendation == "promote" and e.winner == "v2" for e in events)


def test_bandit_moves_traffic_toward_the_best_arm_in_redis(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
) -> None:
    reg = _registry(redis_client, redis_keys)
    arms = ["v1", "v2", "v3"]
    reg.create(
        _spec(
            "bandit",
            "m-bandit",
            arms,
            allocation="bandit",
            bandit={"min_share": 0.1, "min_update_interval_seconds": 0.5, "max_step": 0.3},
        ),
        actor="e2e",
    )
    reg.start("bandit", actor="e2e")
    store = RoutingTableStore(redis_client, redis_keys)
    service = ExperimentsService(
        settings, CollectorRegistry(), group_id=f"g-{topics.prefix}", analysis_interval=0.5, seed=3
    )
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    traffic = Traffic(servers, topics, redis_client, redis_keys, ["m-bandit"])
    rng = np.random.default_rng(11)
    rates = {"v1": 0.05, "v2": 0.05, "v3": 0.25}
    served: list[dict[str, int]] = []
    try:
        for r in range(4):
            revision = store.revision("m-bandit")
            traffic.router.wait_for_revision("m-bandit", revision)
            before = len(traffic.exposures)
            sent = traffic.run("m-bandit", range(r * 600, (r + 1) * 600), rates, rng)
            assert len(traffic.exposures) == before
            counts = {a: 0 for a in arms}
            for topic, _, raw in sent:
                if topic == topics.exposures:
                    counts[decode_event(ExposureLogged, raw).arm] += 1
            served.append(counts)
            deadline = time.monotonic() + 30
            while store.revision("m-bandit") == revision and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        traffic.close()
        stop.set()
        worker.join(timeout=20)
    table = store.read("m-bandit")
    assert table is not None and table.experiment_id == "bandit"
    assert table.weights["v3"] > 0.6, table.weights
    assert min(table.weights.values()) >= 0.1 - 1e-9
    assert served[-1]["v3"] / 600 > served[0]["v3"] / 600 + 0.2, served
    assert [e.weights["v3"] for e in reg.history("bandit")][-1] == pytest.approx(
        table.weights["v3"]
    )
