"""``modelguard control``: manual commands change Redis by CAS and are audited."""

from __future__ import annotations

import json

import pytest
import redis

from modelguard.cli import main
from modelguard.contracts.codec import decode_event
from modelguard.contracts.decisions import ControlKeys, RoutingDecision
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from modelguard.routing import RoutingTableStore
from tests.support.kafka import read_all
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


@pytest.fixture
def env(
    servers: Servers, topics: Topics, redis_keys: RedisKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGUARD_KAFKA_BOOTSTRAP_SERVERS", servers.kafka_bootstrap)
    for name, value in servers.redis_env("operator").items():  # the CLI's Redis user
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELGUARD_TOPIC_PREFIX", topics.prefix)
    monkeypatch.setenv("MODELGUARD_REDIS_PREFIX", redis_keys.prefix)


def test_manual_commands_are_applied_and_audited(
    env: None,
    servers: Servers,
    topics: Topics,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = RoutingTableStore(redis_client, redis_keys)
    store.write("fraud", {"v1": 1.0}, expected_revision=0, actor="seed")
    ck = ControlKeys(redis_keys.prefix)
    # set-weights can add a version (how an operator starts a rollout at 1%)
    assert main(["control", "set-weights", "fraud", "v1=0.99", "v2=0.01"]) == 0
    assert main(["control", "set-weights", "fraud", "v1=0.5", "v2=0.6"]) == 2
    assert "sum to 1.1" in capsys.readouterr().err
    assert main(["control", "set-weights", "fraud", "v1=0.7", "v2=0.3", "--actor", "ana"]) == 0
    assert store.read("fraud").weights == {"v1": 0.7, "v2": 0.3}  # type: ignore[union-attr]
    assert main(["control", "freeze", "fraud", "--reason", "investigating"]) == 0
    assert json.loads(redis_client.hget(ck.frozen, "fraud"))["reason"] == "investigating"  # type: ignore[arg-type]
    assert main(["control", "status", "fraud"]) == 0
    assert "FROZEN" in capsys.readouterr().out
    assert main(["control", "unfreeze", "fraud"]) == 0
    assert redis_client.hget(ck.frozen, "fraud") is None
    assert main(["control", "promote", "fraud", "v2"]) == 0
    assert store.read("fraud").weights == {"v1": 0.0, "v2": 1.0}  # type: ignore[union-attr]
    assert main(["control", "rollback", "fraud", "--to", "v1", "--reason", "bad"]) == 0
    table = store.read("fraud")
    assert table is not None and table.weights == {"v1": 1.0, "v2": 0.0} and table.revision == 5
    assert table.reason == "bad" and table.actor.startswith("cli:")
    assert main(["control", "promote", "fraud", "v9"]) == 2
    assert "unknown version 'v9'" in capsys.readouterr().err

    decisions = [
        decode_event(RoutingDecision, m.value())
        for m in read_all(servers.kafka_bootstrap, topics.routing_decisions, 6, timeout=60)
    ]
    assert [d.action for d in decisions] == [
        "set_weights",
        "set_weights",
        "freeze",
        "unfreeze",
        "promote",
        "rollback",
    ]
    assert decisions[1].actor == "ana"
    assert decisions[-1].revision_before == 4 and decisions[-1].revision_after == 5
    assert decisions[-1].decision_id == table.decision_id
    audit = redis_client.xrange(ck.audit)
    assert [e[1][b"action"] for e in audit] == [
        b"set_weights",
        b"set_weights",
        b"freeze",
        b"unfreeze",
        b"promote",
        b"rollback",
    ]
    assert [t.actor for t in store.history("fraud")][-1].startswith("cli:")
