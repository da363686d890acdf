"""Experiments processor on real Kafka and Redis: saved offsets move past dead-lettered
messages, and analyses are spread over the workers (not tied to partition 0)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, encode_event
from modelguard.contracts.experiments import ExperimentKeys, ExposureLogged
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.experiments.analysis import analysis_task
from modelguard.experiments.registry import ExperimentRegistry
from modelguard.routing.store import RoutingTableStore
from modelguard_services.experiments.app import ExperimentsService
from tests.support.kafka import read_to_end
from tests.support.servers import Servers

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _exposure(i: int) -> bytes:
    return encode_event(
        ExposureLogged(
            event_id=f"x{i}",
            experiment_id="e1",
            unit_id=f"u{i}",
            arm="v1",
            model="m1",
            event_time=T0,
        )
    )


def _send(servers: Servers, records: list[tuple[str, int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    for topic, partition, value in records:
        producer.produce(topic, value=value, key=b"k", partition=partition)
    assert producer.flush(15) == 0


def _dead_letters(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in registry.collect():
        if family.name == "modelguard_dead_letters":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_dead_letter_at_partition_end_is_not_read_again_after_restart(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
) -> None:
    _send(
        servers,
        [
            *[(topics.exposures, 0, _exposure(i)) for i in range(3)],
            (topics.exposures, 0, b"{not json"),  # last message of exposures/0
            (topics.outcomes, 1, b'{"unit_id": "u1"}'),  # only message of outcomes/1
        ],
    )
    group = f"g-{topics.prefix}"
    first_registry = CollectorRegistry()
    first = ExperimentsService(settings, first_registry, group_id=group)
    assert first.run(threading.Event(), idle_exit_seconds=4.0) == 3
    assert _dead_letters(first_registry) == 2
    keys = ExperimentKeys(redis_keys.prefix)
    saved0 = json.loads(redis_client.get(keys.checkpoint(group, 0)) or b"{}")
    saved1 = json.loads(redis_client.get(keys.checkpoint(group, 1)) or b"{}")
    assert saved0["offsets"][f"{topics.exposures}:0"] == 4  # past the dead letter
    assert saved1["offsets"][f"{topics.outcomes}:1"] == 1

    _send(servers, [(topics.exposures, 0, _exposure(3))])
    second_registry = CollectorRegistry()
    second = ExperimentsService(settings, second_registry, group_id=group)
    assert second.run(threading.Event(), idle_exit_seconds=4.0) == 1  # only the new one
    assert _dead_letters(second_registry) == 0
    assert len(read_to_end(servers.kafka_bootstrap, topics.dead_letter)) == 2


def _spec(eid: str, model: str) -> dict[str, Any]:
    return {
        "experiment_id": eid,
        "model": model,
        "control": "v1",
        "treatments": ["v2"],
        "split": {"v1": 0.5, "v2": 0.5},
        "primary_metric": "conversion",
    }


def test_analyses_are_spread_over_workers(
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
) -> None:
    registry = ExperimentRegistry(
        redis_client, ExperimentKeys(redis_keys.prefix), RoutingTableStore(redis_client, redis_keys)
    )
    ids = [f"exp-{i}" for i in range(8)]
    assert {analysis_task(e, 3) for e in ids} == {0, 1, 2}
    for i, eid in enumerate(ids):
        registry.create(_spec(eid, f"model-{i}"), actor="test")
        registry.start(eid, actor="test")
    group = f"g-{topics.prefix}"
    workers = [
        ExperimentsService(settings, CollectorRegistry(), group_id=group, analysis_interval=0.3)
        for _ in range(2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 90  # joins and rebalances of two members
        while time.monotonic() < deadline:
            owned = [set(w.tasks) for w in workers]
            if all(owned) and owned[0] | owned[1] == {0, 1, 2} and not owned[0] & owned[1]:
                break
            time.sleep(0.1)
        owned = [set(w.tasks) for w in workers]
        assert all(owned) and owned[0] | owned[1] == {0, 1, 2}, owned
        marks = [len(w.analyses) for w in workers]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {
                a.experiment_id for w, m in zip(workers, marks, strict=True) for a in w.analyses[m:]
            }
            if seen == set(ids):
                break
            time.sleep(0.1)
        assert [set(w.tasks) for w in workers] == owned  # no rebalance meanwhile
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    analysed = [
        {a.experiment_id for a in w.analyses[m:]} for w, m in zip(workers, marks, strict=True)
    ]
    for w_owned, got in zip(owned, analysed, strict=True):
        assert got == {e for e in ids if analysis_task(e, 3) in w_owned}
    assert analysed[0] and analysed[1]  # both workers analyse; not only partition 0's owner
