"""A server that cannot start gives a clear error naming it and showing its log."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelguard_devstack import StackConfig, StackError
from modelguard_devstack.config import find_repo_root
from modelguard_devstack.servers import KafkaServer, RedisServer
from tests.support.ports import free_port
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


def test_kafka_that_cannot_bind_fails_with_its_log(tmp_path: Path, servers: Servers) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        cfg = StackConfig(
            root=find_repo_root(),
            kafka_port=busy,
            kafka_controller_port=free_port(),
            kafka_sasl_port=free_port(),  # only the plain listener's port is busy
            run_dir_override=tmp_path,
        )
        kafka = KafkaServer(cfg)
        kafka.install()
        with pytest.raises(StackError, match=r"kafka (exited with code|was not ready)") as info:
            kafka.start(timeout=60)
        kafka.stop()
    assert "last lines of" in str(info.value)


def test_redis_with_bad_config_fails_clearly(tmp_path: Path) -> None:
    cfg = StackConfig(root=find_repo_root(), redis_port=free_port(), run_dir_override=tmp_path)

    class BrokenRedis(RedisServer):
        def command(self) -> list[str]:
            return [*super().command(), "--no-such-option", "1"]

    with pytest.raises(StackError, match="redis exited with code 1") as info:
        BrokenRedis(cfg).start(timeout=10)
    assert "no-such-option" in str(info.value)


def test_bad_port_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGUARD_STACK_KAFKA_PORT", "90000")
    with pytest.raises(ValueError, match="MODELGUARD_STACK_KAFKA_PORT='90000'"):
        StackConfig.from_env()
