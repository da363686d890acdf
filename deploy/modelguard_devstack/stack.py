"""Start, stop and inspect the whole local stack (with a lock, so concurrent callers agree)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelguard_devstack.config import StackConfig
from modelguard_devstack.servers import (
    AlertmanagerServer,
    KafkaServer,
    PrometheusServer,
    RedisServer,
    Server,
    StackError,
)

__all__ = ["Endpoints", "Stack", "StackConfig", "StackError"]

SERVER_NAMES = ("kafka", "redis", "prometheus", "alertmanager")


@dataclass(frozen=True)
class Endpoints:
    """Where each server of a running stack answers."""

    kafka_bootstrap: str
    redis_url: str
    prometheus_url: str
    alertmanager_url: str
    prometheus_targets: Path
    #: SASL_PLAINTEXT (SCRAM-SHA-256) listener of the broker (user ``KAFKA_SCRAM_USER``).
    kafka_sasl_bootstrap: str = ""
    #: Generated passwords: ``redis-<role>`` per Redis ACL user, ``kafka-<user>``; None
    #: for a Redis without ACL users (clients are then anonymous).
    secrets_dir: Path | None = None

    def redis_password_file(self, role: str) -> Path | None:
        return None if self.secrets_dir is None else self.secrets_dir / f"redis-{role}"

    def redis_env(self, role: str) -> dict[str, str]:
        """``MODELGUARD_REDIS_*`` variables of a service running as Redis user ``role``."""
        env = {"MODELGUARD_REDIS_URL": self.redis_url}
        path = self.redis_password_file(role)
        if path is not None:
            env["MODELGUARD_REDIS_USERNAME"] = role
            env["MODELGUARD_REDIS_PASSWORD_FILE"] = str(path)
        return env

    def redis_settings(self, role: str) -> dict[str, Any]:
        """``CommonSettings`` fields for Redis user ``role``."""
        path = self.redis_password_file(role)
        if path is None:
            return {"redis_url": self.redis_url}
        return {"redis_url": self.redis_url, "redis_username": role, "redis_password_file": path}


class Stack:
    """The four local servers. ``up()`` is idempotent: ready servers are left running."""

    def __init__(self, cfg: StackConfig | None = None) -> None:
        self.cfg = cfg or StackConfig.from_env()
        self.kafka = KafkaServer(self.cfg)
        self.redis = RedisServer(self.cfg)
        self.prometheus = PrometheusServer(self.cfg)
        self.alertmanager = AlertmanagerServer(self.cfg)

    @property
    def servers(self) -> dict[str, Server]:
        """The servers by their own ``name`` (the names of ``SERVER_NAMES``)."""
        return {s.name: s for s in (self.kafka, self.redis, self.prometheus, self.alertmanager)}

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            redis_url=self.redis.url,
            prometheus_url=self.prometheus.url,
            alertmanager_url=self.alertmanager.url,
            prometheus_targets=self.cfg.prometheus_targets,
            kafka_sasl_bootstrap=self.kafka.sasl_bootstrap,
            secrets_dir=self.cfg.secrets_dir,
        )

    def _select(self, only: list[str] | None) -> list[Server]:
        """``None`` means every server; an empty list means none."""
        names = list(SERVER_NAMES) if only is None else only
        unknown = [n for n in names if n not in SERVER_NAMES]
        if unknown:
            raise StackError(f"unknown server(s) {unknown}; choose from {list(SERVER_NAMES)}")
        return [self.servers[n] for n in names]

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.cfg.run_dir / "stack.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def install(self, only: list[str] | None = None) -> dict[str, float]:
        """Install what is missing (apt packages, Kafka jars); seconds per server."""
        took: dict[str, float] = {}
        with self._lock():
            for server in self._select(only):
                t0 = time.monotonic()
                server.install()
                took[server.name] = time.monotonic() - t0
        return took

    def up(self, only: list[str] | None = None, timeout: float = 90.0) -> dict[str, float]:
        """Install and start; returns seconds each server took to become ready, 0.0 for
        one that was already ready when this call held the stack lock (so callers know
        exactly which servers they started, and should stop)."""
        took: dict[str, float] = {}
        with self._lock():
            for server in self._select(only):
                server.install()
                took[server.name] = server.start(timeout)
        return took

    def down(self, only: list[str] | None = None) -> list[str]:
        """Stop servers (reverse start order); returns the names that were running."""
        stopped: list[str] = []
        with self._lock():
            for server in reversed(self._select(only)):
                if server.stop():
                    stopped.append(server.name)
        return stopped

    def status(self) -> dict[str, dict[str, object]]:
        return {
            name: {"ready": server.ready(), "pid": server.pid(), "log": str(server.log_path)}
            for name, server in self.servers.items()
        }
