"""Service processes for the kill / recovery tests: one way to spawn
``python -m modelguard_services.<name>`` on a test's settings, and one slow producer to
feed it while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from confluent_kafka import Producer

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import encode_event
from modelguard.contracts.base import Event
from tests.support.paths import ROOT
from tests.support.threads import CheckedThread, start_thread

#: one record to produce: topic, partition, key, event
Record = tuple[str, int, str, Event]


def service_env(settings: CommonSettings, log_level: str = "WARNING") -> dict[str, str]:
    """The process environment that points a service at the test's Kafka topics and Redis."""
    return {
        **os.environ,
        "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MODELGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "MODELGUARD_REDIS_URL": settings.redis_url,
        "MODELGUARD_REDIS_PREFIX": settings.redis_prefix,
        "MODELGUARD_LOG_LEVEL": log_level,
    }


def spawn_service(name: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``python -m modelguard_services.<name> *args`` from the repository root; stderr
    piped (the tests show its tail when the service dies), stdout dropped."""
    return subprocess.Popen(
        [sys.executable, "-m", f"modelguard_services.{name}", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def produce_slowly(bootstrap: str, records: Sequence[Record], seconds: float) -> CheckedThread:
    """Produce ``records`` in chunks of 200 spread over ``seconds`` (so a kill lands
    mid-stream), in a started thread; join it to know they are all delivered (the join
    fails if they are not, or not yet)."""

    def run() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        chunk = 200
        pause = seconds / max(1, len(records) // chunk)
        for lo in range(0, len(records), chunk):
            for topic, part, key, e in records[lo : lo + chunk]:
                producer.produce(topic, key=key.encode(), value=encode_event(e), partition=part)
            producer.poll(0)
            time.sleep(pause)
        assert producer.flush(30) == 0

    return start_thread(run, name="produce_slowly")


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` (no shutdown hook runs) and check it died of it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
