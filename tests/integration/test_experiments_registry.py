"""Experiment registry on a real Redis: validation, compare-and-set, audit, routing
tables written through the routing table writer, 20 experiments side by side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from modelguard.contracts.experiments import ExperimentKeys
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.routing import CompiledTable
from modelguard.experiments.registry import ExperimentRegistry, RegistryError, SpecRevisionError
from modelguard.routing.client import RoutingClient
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


def test_routing_assigns_units_with_the_spec_salt(
    registry: ExperimentRegistry, redis_client: redis.Redis, redis_keys: RedisKeys
) -> None:
    """The spec's salt (default: the experiment id) is what the routing client hashes
    with, and later weight changes of the experiment (bandit, controller) keep it."""
    store = RoutingTableStore(redis_client, redis_keys)
    registry.create(spec_data(1, salt="shared-salt"), actor="test")
    registry.create(spec_data(2), actor="test")
    registry.start("exp1", actor="test")
    registry.start("exp2", actor="test")
    salted, default = store.read("model1"), store.read("model2")
    assert salted is not None and salted.salt == "shared-salt"
    assert default is not None and default.salt == "exp2"
    units = [f"user-{i}" for i in range(400)]
    with RoutingClient(redis_client, redis_keys, models=["model1", "model2"]) as router:
        got = [router.version_for("model1", u) for u in units]
        by_salt = CompiledTable(salted.weights, slots=salted.slots, salt="shared-salt")
        by_id = CompiledTable(salted.weights, slots=salted.slots, salt="exp1")
        assert got == [by_salt.choose(u) for u in units]
        assert got != [by_id.choose(u) for u in units]  # the salt changes the assignment
        # a second experiment with the same salt assigns the same units the same way
        assert [router.version_for("model2", u, salt="shared-salt") for u in units] == got
    spec = registry.require("exp1")
    registry.set_split(spec, {"v1": 0.3, "v2": 0.7}, actor="bandit", reason="test")
    store.update("model1", lambda t: {"v1": 0.2, "v2": 0.8}, actor="controller")
    after = store.read("model1")
    assert after is not None and after.salt == "shared-salt" and after.revision == 3
    registry.pause("exp1", actor="test")
    paused = store.read("model1")
    assert paused is not None and paused.experiment_salt is None and paused.salt == "model1"
