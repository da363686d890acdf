"""Bad configuration says what is wrong and where."""

from __future__ import annotations

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
