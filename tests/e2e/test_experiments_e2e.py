"""Experiments end to end with the traffic simulator on real Kafka, Redis and Prometheus.

Traffic: the simulator (``SimulatorService``, in process) serves requests through the
Redis routing client, whose tables the experiment registry wrote, and publishes
predictions, labels, exposures and outcomes through the SDK. Each arm is a model
version with its own accuracy; the outcome ``conversion`` is 1 when a prediction is
correct, so a more accurate challenger has a real lift. The experiments processor
consumes exposures and outcomes from Kafka, publishes analyses and writes bandit
weights back to Redis through the routing table writer.

Every component runs on the simulator's clock (simulated time), so event times, split
epochs of the sample-ratio check and bandit update intervals agree.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, decode_event
from modelguard.contracts.experiments import ExperimentAnalysis, ExperimentKeys
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.simulation import Scenario, SimulationEngine
from modelguard.experiments.registry import ExperimentRegistry
from modelguard.routing.store import RoutingTableStore
from modelguard_services.experiments.app import ExperimentsService
from modelguard_services.simulator import SimulatorService
from tests.support.kafka import end_offsets, read_to_end
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class SimClock:
    """The simulator's clock: ``T0`` until an engine is attached, then its time."""

    def __init__(self) -> None:
        self.engine: SimulationEngine | None = None

    def __call__(self) -> datetime:
        return T0 if self.engine is None else self.engine.now


def _scenario(
    name: str,
    arms: dict[str, dict[str, float]],
    *,
    seed: int,
    rate: float,
    incidents: list[dict[str, Any]] | None = None,
) -> Scenario:
    """One model ``m-<experiment>`` per experiment; arm -> accuracy (conversion rate)."""
    return Scenario.model_validate(
        {
            "name": name,
            "seed": seed,
            "duration_seconds": 3600,
            "rate_per_second": rate,
            "units": 1_000_000,
            "models": [
                {
                    "name": f"m-{eid}",
                    "experiment_id": eid,
                    "versions": {v: {"accuracy": acc} for v, acc in accuracy.items()},
                    "weights": {v: 1 / len(accuracy) for v in accuracy},
                    "outcome_metric": "conversion",
                    "labels": {"fraction": 1.0, "delay_seconds": {"kind": "constant", "value": 1}},
                }
                for eid, accuracy in arms.items()
            ],
            "incidents": incidents or [],
        }
    )


def _spec(eid: str, arms: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "experiment_id": eid,
        "model": f"m-{eid}",
        "control": arms[0],
        "treatments": arms[1:],
        "split": {a: 1 / len(arms) for a in arms},
        "primary_metric": "conversion",
        "min_sample_size": 300,
        "planned_units_per_arm": 1000,
        **kw,
    }


def _registry(client: redis.Redis, keys: RedisKeys, clock: SimClock) -> ExperimentRegistry:
    return ExperimentRegistry(
        client,
        ExperimentKeys(keys.prefix),
        RoutingTableStore(client, keys, clock=clock),
        clock=clock,
    )


def _count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_winner_aa_and_srm_with_restart_dedup_and_metrics(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
    prometheus: PrometheusHelper,
) -> None:
    clock = SimClock()
    reg = _registry(redis_client, redis_keys, clock)
    scenario = _scenario(
        "exp-e2e",
        {
            "lift": {"v1": 0.10, "v2": 0.18},  # a real lift of the challenger
            "aa": {"v1": 0.15, "v2": 0.15},  # A/A
            "srm": {"v1": 0.10, "v2": 0.18},  # a lift, but 20% of v2's exposures lost
        },
        seed=7,
        rate=360,
        incidents=[
            {"kind": "exposure_loss", "model": "m-srm", "version": "v2", "at": 0, "fraction": 0.2}
        ],
    )
    for eid in ("lift", "aa", "srm"):
        reg.create(_spec(eid, ["v1", "v2"]), actor="e2e")
        reg.start(eid, actor="e2e")
    group = f"g-{topics.prefix}"
    with SimulatorService(settings, scenario, speed=None, start_time=T0, clock=clock) as sim:
        clock.engine = sim.engine
        phase1 = sim.run(seconds=12)
        assert phase1.undelivered == 0
        exposed_phase1 = sim.engine.stats.exposures
        one = ExperimentsService(
            settings, CollectorRegistry(), group_id=group, clock=clock, analysis_interval=0.5
        )
        sent = sum(
            _count(sim.registry, "modelguard_simulator_events_total", event_type=t)
            for t in ("exposure_logged", "outcome_observed")
        )
        assert one.run(threading.Event(), idle_exit_seconds=3.0) == sent

        # second life: new traffic, the first phase delivered again (a replay of the
        # same seeded run: same event ids), and junk on both topics
        assert sim.run(seconds=20).undelivered == 0
        stats = sim.engine.stats
        with SimulatorService(
            settings,
            scenario,
            speed=None,
            start_time=T0,
            clock=clock,
            id_prefix=sim.engine.id_prefix,
        ) as replay:
            replayed = replay.run(seconds=12)
        assert replayed.stats.exposures == exposed_phase1
    junk = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    junk.produce(topics.outcomes, key=b"x", value=b"{not json")
    junk.produce(topics.exposures, key=b"y", value=b'{"experiment_id": "lift"}')
    assert junk.flush(15) == 0
    assert stats.exposures_lost > 0 and stats.outcomes > 0

    registry = CollectorRegistry()
    metrics = MetricsServer(registry)
    job = prometheus.register(metrics.target)
    two = ExperimentsService(settings, registry, group_id=group, clock=clock, analysis_interval=0.5)
    stop = threading.Event()
    worker = start_thread(two.run, stop, name="experiments")
    try:
        prometheus.wait_for(
            f'sum(experiment_arm_units{{job_id="{job}"}})',
            lambda r: bool(r) and value(r) == stats.exposures,
            timeout=60,
        )
        wait_for(
            lambda: _count(registry, "modelguard_dead_letters_total") >= 2,
            120,
            "both junk records dead-lettered",
        )
        # the analyses judged below must have seen every outcome: wait until the service
        # has read both topics to their end, then for one more analysis of each experiment
        ends = end_offsets(servers.kafka_bootstrap, [topics.exposures, topics.outcomes])
        wait_for(
            lambda: all(two.runtime.offsets.get(k, -1) >= v for k, v in ends.items() if v),
            120,
            "experiments: both topics read to their end",
        )
        seen = len(two.analyses)
        wait_for(lambda: len(two.analyses) >= seen + 3, 120, "an analysis after the end")
    finally:
        stop.set()
        try:
            worker.join(timeout=60)  # raises what the service raised, or if it still runs
        finally:
            metrics.close()

    # restart: the second life read only what came after the first one's checkpoint,
    # so its duplicates are exactly the replayed exposures (and some replayed outcomes)
    dupes = _count(registry, "experiment_events_total", outcome="exposure_duplicate")
    assert dupes == replayed.stats.exposures
    assert _count(registry, "experiment_events_total", outcome="outcome_duplicate") > 0
    assert _count(registry, "modelguard_dead_letters_total") == 2

    latest: dict[str, ExperimentAnalysis] = {a.experiment_id: a for a in two.analyses}
    lift, aa, srm = latest["lift"], latest["aa"], latest["srm"]
    assert lift.total_units + aa.total_units + srm.total_units == stats.exposures
    # Known defect (closing note of 2026-12-01): once every outcome is in, the latest
    # analysis of the real lift can fall back from "promote" to "continue" (the running
    # confidence sequence of looks taken while outcomes lagged their exposures); the
    # promotion itself is asserted on the analyses topic below. Never a wrong winner:
    assert lift.winner in (None, "v2") and lift.recommendation in ("promote", "continue")
    assert not lift.srm_detected
    assert aa.recommendation == "continue" and aa.winner is None, aa.reason
    assert not aa.srm_detected
    assert srm.srm_detected and srm.frozen and srm.recommendation == "continue"
    assert srm.srm_p_value is not None and srm.srm_p_value < 0.001
    assert srm.winner is None and "sample ratio mismatch" in srm.reason
    # the controller's view: analysis events on Kafka, keyed by model
    msgs = read_to_end(servers.kafka_bootstrap, topics.experiment_analyses)  # it stopped
    events = [decode_event(ExperimentAnalysis, m.value()) for m in msgs]
    assert {m.key() for m in msgs} >= {b"m-lift", b"m-aa", b"m-srm"}
    assert any(e.recommendation == "promote" and e.winner == "v2" for e in events)
    assert not any(e.experiment_id == "srm" and e.recommendation != "continue" for e in events)


def test_bandit_moves_traffic_toward_the_best_arm_in_redis(
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
) -> None:
    clock = SimClock()
    reg = _registry(redis_client, redis_keys, clock)
    arms = ["v1", "v2", "v3"]
    reg.create(
        _spec(
            "bandit",
            arms,
            allocation="bandit",
            bandit={"min_share": 0.1, "min_update_interval_seconds": 0.5, "max_step": 0.3},
        ),
        actor="e2e",
    )
    reg.start("bandit", actor="e2e")
    store = RoutingTableStore(redis_client, redis_keys)
    scenario = _scenario(
        "bandit-e2e", {"bandit": {"v1": 0.05, "v2": 0.05, "v3": 0.25}}, seed=11, rate=300
    )
    service = ExperimentsService(
        settings,
        CollectorRegistry(),
        group_id=f"g-{topics.prefix}",
        clock=clock,
        analysis_interval=0.5,
        seed=3,
    )
    stop = threading.Event()
    worker = start_thread(service.run, stop, name="experiments")
    served: list[dict[str, int]] = []
    try:
        with SimulatorService(settings, scenario, speed=None, start_time=T0, clock=clock) as sim:
            clock.engine = sim.engine
            for _ in range(4):
                revision = store.revision("m-bandit")
                if sim.router is not None:  # the simulator routes with the latest table
                    assert sim.router.wait_for_revision("m-bandit", revision, timeout=30)
                before = dict(sim.engine.stats.per_version)
                assert sim.run(seconds=2).undelivered == 0
                served.append(
                    {a: sim.engine.stats.per_version.get(a, 0) - before.get(a, 0) for a in arms}
                )
                # an update usually follows (not always: weights at their bounds stay)
                deadline = time.monotonic() + 30
                while store.revision("m-bandit") == revision and time.monotonic() < deadline:
                    time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=60)  # raises what the service raised, or if it still runs
    table = store.read("m-bandit")
    assert table is not None and table.experiment_id == "bandit" and table.salt == "bandit"
    assert table.weights["v3"] > 0.6, table.weights
    assert min(table.weights.values()) >= 0.1 - 1e-9
    share = [s["v3"] / sum(s.values()) for s in served]
    assert share[-1] > share[0] + 0.2, served
    assert [e.weights["v3"] for e in reg.history("bandit")][-1] == pytest.approx(
        table.weights["v3"]
    )
