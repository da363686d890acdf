"""Bad configuration says what is wrong and where."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from modelguard.adapters.settings import CommonSettings
from modelguard_devstack.stack import Stack, StackError


def test_settings_read_env_and_name_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("MODELGUARD_TOPIC_PREFIX", "acme")
    s = CommonSettings()
    assert s.kafka_bootstrap_servers == "10.0.0.1:9092"
    assert s.topics.predictions == "acme.predictions.v1"
    monkeypatch.setenv("MODELGUARD_METRICS_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="metrics_port"):
        CommonSettings()


def test_unknown_server_name_is_rejected() -> None:
    with pytest.raises(StackError, match=r"unknown server\(s\) \['zookeeper'\]"):
        Stack().up(only=["zookeeper"])


def test_empty_selection_stops_nothing_and_none_means_all() -> None:
    stack = Stack()
    assert stack._select([]) == []
    assert [s.name for s in stack._select(None)] == ["kafka", "redis", "prometheus", "alertmanager"]
    assert stack.down([]) == []


def test_broker_has_a_scram_listener_and_redis_an_acl_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from modelguard_devstack.config import StackConfig, kafka_properties
    from modelguard_devstack.servers import RedisServer

    monkeypatch.setenv("MODELGUARD_STACK_KAFKA_SASL_PORT", "29196")
    cfg = StackConfig.from_env()
    assert cfg.kafka_sasl_port == 29196
    props = dict(
        line.split("=", 1) for line in kafka_properties(cfg, tmp_path).splitlines() if "=" in line
    )
    assert "SASL://127.0.0.1:29196" in props["listeners"].split(",")
    assert "SASL:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"

    redis = RedisServer(StackConfig(root=cfg.root, run_dir_override=tmp_path))
    redis.dir.mkdir(parents=True)
    redis.prepare()
    acl = redis.acl_path.read_text()
    assert acl.startswith("user default off ")
    secrets = sorted(p.name for p in (tmp_path / "secrets").iterdir())
    assert secrets == sorted(
        f"redis-{r}" for r in ("admin", "operator", "controller", "experiments", "drift", "router")
    )
    assert all(((tmp_path / "secrets" / s).stat().st_mode & 0o077) == 0 for s in secrets)
    assert "--aclfile" in redis.command()
    first = (tmp_path / "secrets" / "redis-admin").read_text()
    redis.prepare()  # idempotent: passwords are kept across restarts
    assert (tmp_path / "secrets" / "redis-admin").read_text() == first
