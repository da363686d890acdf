"""Resolve the real servers the integration tests talk to.

Per server, in order: an environment variable (``KAFKA_BOOTSTRAP_SERVERS``,
``REDIS_URL``, ``PROMETHEUS_URL`` with ``PROMETHEUS_TARGETS_DIR``, ``ALERTMANAGER_URL``);
else a testcontainers container when a Docker daemon answers (Kafka and Redis); else
the project's local launcher (``modelguard_devstack``). A server that cannot be had
fails the run; nothing is skipped. Servers this session started are stopped at its end.

Redis users (ADR 0012): a launcher-started Redis has ACL users whose passwords are files
``redis-<role>`` in the launcher's secrets directory (``REDIS_SECRETS_DIR`` overrides
it). When those files authenticate against the Redis in use, fixtures connect as
``admin`` and services get their role's user (:meth:`Servers.redis_settings`); a Redis
without ACL users (a bare server, a container) is used anonymously.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from modelguard.adapters.redis_client import RedisConnection, make_redis
from modelguard_devstack import Stack, StackError
from modelguard_devstack.config import KAFKA_SCRAM_USER
from modelguard_devstack.servers import kafka_secret_path


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    redis_url: str
    prometheus_url: str
    prometheus_targets: Path
    alertmanager_url: str
    #: Directory of ``redis-<role>`` password files; None: Redis has no ACL users.
    redis_secrets: Path | None = None
    #: The broker's SASL_PLAINTEXT SCRAM-SHA-256 listener, its user and password file.
    kafka_sasl_bootstrap: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password_file: Path | None = None

    def redis_password_file(self, role: str) -> Path | None:
        return None if self.redis_secrets is None else self.redis_secrets / f"redis-{role}"

    def redis_connection(self, role: str = "admin") -> RedisConnection:
        """How a client of ``role`` reaches the test Redis (anonymous without ACL)."""
        path = self.redis_password_file(role)
        if path is None:
            return RedisConnection(self.redis_url)
        return RedisConnection(self.redis_url, role, path.read_text().strip())

    def redis_client(self, role: str = "admin") -> redis.Redis:
        return make_redis(self.redis_connection(role))

    def redis_settings(self, role: str) -> dict[str, Any]:
        """``CommonSettings`` fields for a service running as ``role``."""
        path = self.redis_password_file(role)
        if path is None:
            return {"redis_url": self.redis_url}
        return {"redis_url": self.redis_url, "redis_username": role, "redis_password_file": path}

    def redis_env(self, role: str) -> dict[str, str]:
        """``MODELGUARD_REDIS_*`` variables for a service subprocess running as ``role``."""
        env = {"MODELGUARD_REDIS_URL": self.redis_url}
        path = self.redis_password_file(role)
        if path is not None:
            env |= {"MODELGUARD_REDIS_USERNAME": role, "MODELGUARD_REDIS_PASSWORD_FILE": str(path)}
        return env


def redis_secrets_for(url: str, candidates: list[Path]) -> Path | None:
    """The first directory whose ``redis-admin`` authenticates on ``url``, else None
    (the server must then answer anonymously, or the run fails here with the reason)."""
    for directory in candidates:
        path = directory / "redis-admin"
        if not path.is_file():
            continue
        try:
            conn = RedisConnection(url, "admin", path.read_text().strip())
            if make_redis(conn).ping():
                return directory
        except redis.AuthenticationError:
            continue
    try:
        make_redis(url).ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis at {url} refuses an anonymous client ({exc}) and no secrets directory "
            f"among {[str(c) for c in candidates]} authenticates; set REDIS_SECRETS_DIR"
        ) from exc
    return None


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def resolve_servers(cleanup: ExitStack) -> Servers:
    """Find or start every server; registers their shutdown on ``cleanup``."""
    found: dict[str, str] = {}
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        found["kafka"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if os.environ.get("REDIS_URL"):
        found["redis"] = os.environ["REDIS_URL"]
    if os.environ.get("PROMETHEUS_URL") and os.environ.get("PROMETHEUS_TARGETS_DIR"):
        found["prometheus"] = os.environ["PROMETHEUS_URL"]
    if os.environ.get("ALERTMANAGER_URL"):
        found["alertmanager"] = os.environ["ALERTMANAGER_URL"]

    if ("kafka" not in found or "redis" not in found) and docker_available():
        found.update(
            _start_containers(cleanup, want=[n for n in ("kafka", "redis") if n not in found])
        )

    stack = Stack()
    missing = [n for n in ("kafka", "redis", "prometheus", "alertmanager") if n not in found]
    if missing:
        try:
            took = stack.up(only=missing)
        except StackError as exc:
            raise RuntimeError(f"could not start the local test servers {missing}: {exc}") from exc
        # 0.0 means "was already ready under the stack lock": not ours to stop.
        started = [n for n, secs in took.items() if secs > 0]
        if started:
            cleanup.callback(stack.down, started)
    eps = stack.endpoints
    redis_url = found.get("redis", eps.redis_url)
    candidates = (
        [Path(os.environ["REDIS_SECRETS_DIR"])] if os.environ.get("REDIS_SECRETS_DIR") else []
    )
    candidates.append(stack.cfg.secrets_dir)
    sasl = _kafka_sasl(found.get("kafka", eps.kafka_bootstrap), eps.kafka_bootstrap, stack)
    return Servers(
        kafka_bootstrap=found.get("kafka", eps.kafka_bootstrap),
        kafka_sasl_bootstrap=sasl[0],
        kafka_sasl_username=sasl[1],
        kafka_sasl_password_file=sasl[2],
        redis_url=redis_url,
        redis_secrets=redis_secrets_for(redis_url, candidates),
        prometheus_url=found.get("prometheus", eps.prometheus_url),
        prometheus_targets=Path(os.environ.get("PROMETHEUS_TARGETS_DIR", eps.prometheus_targets)),
        alertmanager_url=found.get("alertmanager", eps.alertmanager_url),
    )


def _kafka_sasl(
    bootstrap: str, launcher_bootstrap: str, stack: Stack
) -> tuple[str, str, Path | None]:
    """The SCRAM listener: ``KAFKA_SASL_BOOTSTRAP_SERVERS`` with ``KAFKA_SASL_USERNAME`` and
    ``KAFKA_SASL_PASSWORD_FILE``, else the launcher's when the broker is the launcher's."""
    if os.environ.get("KAFKA_SASL_BOOTSTRAP_SERVERS"):
        return (
            os.environ["KAFKA_SASL_BOOTSTRAP_SERVERS"],
            os.environ.get("KAFKA_SASL_USERNAME", KAFKA_SCRAM_USER),
            Path(os.environ["KAFKA_SASL_PASSWORD_FILE"]),
        )
    if bootstrap == launcher_bootstrap:
        eps = stack.endpoints
        return eps.kafka_sasl_bootstrap, KAFKA_SCRAM_USER, kafka_secret_path(stack.cfg)
    return "", "", None


def _start_containers(cleanup: ExitStack, want: list[str]) -> dict[str, str]:
    """Kafka and Redis through testcontainers (only where a Docker daemon answers).

    Prometheus and Alertmanager always come from the local launcher, because they must
    reach scrape targets on the host's loopback.
    """
    out: dict[str, str] = {}
    if "kafka" in want:
        from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer().with_kraft()
        cleanup.enter_context(kafka)
        out["kafka"] = kafka.get_bootstrap_server()
    if "redis" in want:
        from testcontainers.redis import RedisContainer

        redis = RedisContainer()
        cleanup.enter_context(redis)
        host = redis.get_container_host_ip()
        out["redis"] = f"redis://{host}:{redis.get_exposed_port(6379)}/0"
    return out
