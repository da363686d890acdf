"""Resolve the real servers the integration tests talk to.

Per server, in order: an environment variable (``KAFKA_BOOTSTRAP_SERVERS``,
``REDIS_URL``, ``PROMETHEUS_URL`` with ``PROMETHEUS_TARGETS_DIR``, ``ALERTMANAGER_URL``);
else a testcontainers container when a Docker daemon answers (Kafka and Redis); else
the project's local launcher (``modelguard_devstack``). A server that cannot be had
fails the run; nothing is skipped. Servers this session started are stopped at its end.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from modelguard_devstack import Stack, StackError


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    redis_url: str
    prometheus_url: str
    prometheus_targets: Path
    alertmanager_url: str


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
    return Servers(
        kafka_bootstrap=found.get("kafka", eps.kafka_bootstrap),
        redis_url=found.get("redis", eps.redis_url),
        prometheus_url=found.get("prometheus", eps.prometheus_url),
        prometheus_targets=Path(os.environ.get("PROMETHEUS_TARGETS_DIR", eps.prometheus_targets)),
        alertmanager_url=found.get("alertmanager", eps.alertmanager_url),
    )


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
