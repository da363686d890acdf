"""Experiment registry on a real Redis: validation, compare-and-set, audit, routing
tables written through the routing table writer, 20 experiments side by side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from modelguard.contracts.experiments import ExperimentKeys
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.experiments.registry import ExperimentRegistry, RegistryError, SpecRevisionError
from modelguard.routing.store import RoutingTableStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def spec_data(i: int, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(
        experiment_id=f"exp{i}",
        model=f"model{i}",
        control="v1",
        treatments=["v2"],
        split={"v1": 0.5, "v2": 0.5},
        primary_metric="conversion",
        min_sample_size=100,
    )
    d.update(kw)
    return d


@pytest.fixture
def registry(redis_client: redis.Redis, redis_keys: RedisKeys) -> ExperimentRegistry:
    clock = Clock()
    store = RoutingTableStore(redis_client, redis_keys, clock=clock)
    return ExperimentRegistry(redis_client, ExperimentKeys(redis_keys.prefix), store, clock=clock)


def test_twenty_experiments_run_side_by_side(
    registry: ExperimentRegistry, redis_client: redis.Redis, redis_keys: RedisKeys
) -> None:
    store = RoutingTableStore(redis_client, redis_keys)
    for i in range(20):
        registry.create(
            spec_data(i, split={"v1": 0.9 - i * 0.01, "v2": 0.1 + i * 0.01}), actor="test"
        )
        registry.start(f"exp{i}", actor="test")
    assert len(registry.all("running")) == 20
    for i in range(20):
        table = store.read(f"model{i}")
        assert table is not None and table.experiment_id == f"exp{i}"
        assert table.weights == pytest.approx({"v1": 0.9 - i * 0.01, "v2": 0.1 + i * 0.01})
        assert [e.weights for e in registry.history(f"exp{i}")] == [table.weights]
    # one model runs one experiment at a time
    registry.create(spec_data(99, model="model3"), actor="test")
    with pytest.raises(RegistryError, match="already runs experiment 'exp3'"):
        registry.start("exp99", actor="test")


def test_validation_cas_audit_and_lifecycle(
    registry: ExperimentRegistry, redis_client: redis.Redis, redis_keys: RedisKeys
) -> None:
    with pytest.raises(RegistryError, match="split must name exactly the arms"):
        registry.create(spec_data(1, split={"v1": 1.0}), actor="alice")
    with pytest.raises(RegistryError, match="min_sample_size"):
        registry.create(spec_data(1, min_sample_size=0), actor="alice")
    spec = registry.create(spec_data(1), actor="alice")
    assert spec.revision == 1 and spec.status == "draft" and spec.salt == "exp1"
    with pytest.raises(RegistryError, match="already exists"):
        registry.create(spec_data(1), actor="alice")
    updated = registry.update("exp1", {"min_sample_size": 500}, expected_revision=1, actor="bob")
    assert updated.revision == 2
    with pytest.raises(SpecRevisionError, match="at revision 2, not 1"):
        registry.update("exp1", {"min_sample_size": 600}, expected_revision=1, actor="carol")
    running = registry.start("exp1", actor="alice")
    with pytest.raises(RegistryError, match="pause experiment"):
        registry.update(
            "exp1", {"min_sample_size": 700}, expected_revision=running.revision, actor="bob"
        )
    with pytest.raises(RegistryError, match="cannot change treatments"):
        registry.update(
            "exp1", {"treatments": ["v3"]}, expected_revision=running.revision, actor="bob"
        )
    store = RoutingTableStore(redis_client, redis_keys)
    registry.pause("exp1", actor="alice")
    paused = store.read("model1")
    assert paused is not None and paused.weights == {"v1": 1.0, "v2": 0.0}
    assert paused.experiment_id is None
    registry.start("exp1", actor="alice")  # resume
    assert store.read("model1").experiment_id == "exp1"  # type: ignore[union-attr]
    registry.stop("exp1", actor="alice", ship="v2")
    final = store.read("model1")
    assert final is not None and final.weights["v2"] == 1.0 and final.experiment_id is None
    actions = [(r["action"], r["actor"]) for r in registry.audit("exp1")]
    assert actions == [
        ("create", "alice"),
        ("update", "bob"),
        ("start", "alice"),
        ("pause", "alice"),
        ("start", "alice"),
        ("stop", "alice"),
    ]
    with pytest.raises(RegistryError, match="is stopped"):
        registry.start("exp1", actor="alice")
