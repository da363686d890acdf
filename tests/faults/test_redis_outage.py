"""Redis stopped and started again under drift and experiments (issue 11 item 10).

A private redis-server (another port, append-only file so the data survives the
restart) is stopped while both services consume; they must not exit: they report
``modelguard_dependency_up{dependency="redis"} 0``, wait, and once Redis is back they
report 1, handle what arrived meanwhile and save checkpoints covering every event.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.dependency import DEPENDENCY_UP
from modelguard.adapters.drift_store import DriftCheckpoints
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, encode_event
from modelguard.contracts.experiments import ExperimentKeys
from modelguard.core.drift import DriftConfig
from modelguard_services.drift.app import DriftService
from modelguard_services.experiments.app import ExperimentsService
from tests.integration.test_drift_recovery import _events
from tests.integration.test_experiments_service import _exposure
from tests.support.ports import free_port
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server of this test only (the shared one is never touched)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                *("--bind", "127.0.0.1", "--port", str(self.port), "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 20, "private redis up")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()  # SIGTERM: the append-only file is complete
        self.proc.wait(20)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        server.stop()


def _up(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(DEPENDENCY_UP, {"dependency": "redis"})


def test_drift_and_experiments_wait_out_a_redis_outage_and_resume(
    servers: Servers, topics: Topics, settings: CommonSettings, private_redis: PrivateRedis
) -> None:
    s = settings.model_copy(
        update={"redis_url": private_redis.url, "redis_username": None, "redis_password_file": None}
    )
    group = f"g-{topics.prefix}"
    drift_registry, exp_registry = CollectorRegistry(), CollectorRegistry()
    drift = DriftService(
        s,
        drift_registry,
        config=DriftConfig(window_events=300, warmup_events=200),
        group_id=group,
        checkpoint_interval=0.2,
    )
    experiments = ExperimentsService(
        s, exp_registry, group_id=group, checkpoint_interval=0.2, analysis_interval=0.5
    )
    stop = threading.Event()
    threads = [start_thread(svc.run, stop, name=type(svc).__name__) for svc in (drift, experiments)]
    events = _events(500)
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})

    def send(lo: int, hi: int) -> None:
        for e in events[lo:hi]:
            producer.produce(
                topics.predictions, key=e.prediction_id.encode(), value=encode_event(e)
            )
        for i in range(lo // 10, hi // 10):
            producer.produce(topics.exposures, key=f"u{i}".encode(), value=_exposure(i))
        assert producer.flush(15) == 0

    try:
        send(0, 150)
        wait_for(lambda: drift.processed == 150 and experiments.processed == 15, 120, "first part")
        private_redis.stop()
        send(150, 400)  # the warm-up ends (a reference to store) and checkpoints are due
        wait_for(lambda: _up(drift_registry) == 0.0, 60, "drift reports redis down")
        wait_for(lambda: _up(exp_registry) == 0.0, 60, "experiments report redis down")
        time.sleep(1.0)  # an outage of a few seconds, across several retries
        assert all(t.is_alive() for t in threads), [t.error for t in threads]
        private_redis.start()
        send(400, 500)
        wait_for(lambda: _up(drift_registry) == 1.0 and _up(exp_registry) == 1.0, 120, "redis up")
        client = redis.Redis.from_url(private_redis.url)
        checkpoints = DriftCheckpoints(client, s.redis_prefix)
        keys = ExperimentKeys(s.redis_prefix)

        def saved_everything() -> bool:
            saved = checkpoints.offsets(group, range(3))  # one checkpoint per partition
            drift_seen = sum(v for k, v in saved.items() if "predictions" in k)
            exp_seen = 0
            for task in range(3):
                raw = client.get(keys.checkpoint(group, task))
                if raw is not None:
                    exp_seen += sum(json.loads(raw)["offsets"].values())
            return drift_seen == 500 and exp_seen == 50

        wait_for(saved_everything, 120, "checkpoints cover every event after the outage")
        assert drift.processed == 500 and experiments.processed == 50
        assert drift.redis_guard.outages >= 1 and experiments.redis_guard.outages >= 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)  # raises what a service raised, or if it still runs
