"""The drift service killed (SIGKILL) mid-window and restarted: the window's verdict
equals an uninterrupted run's, because state and offsets are checkpointed together.

The stream is on one partition (a count window is one partition's, ADR 0015: the state
of partition 0 and its checkpoint ``p0``)."""

from __future__ import annotations

import subprocess
import time
import uuid

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from modelguard.adapters.drift_store import DriftCheckpoints, partition_name
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DriftSignal, PredictionLogged, Topics, encode_event
from modelguard.contracts.codec import decode_event
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState
from tests.support.events import prediction_at
from tests.support.kafka import read_to_end
from tests.support.servers import Servers
from tests.support.services import kill_9, service_env, spawn_service

pytestmark = pytest.mark.integration
CONFIG = DriftConfig(window_events=300, warmup_events=200)
WINDOW_TESTS = ("ks", "chi_square", "drifted_share")


def _events(n: int) -> list[PredictionLogged]:
    """200 clean predictions (the warm-up), then ``amount`` shifted by 3 sigma."""
    rng = np.random.default_rng(17)
    out = []
    for i in range(n):
        amount = float(rng.normal(3.0 if i >= 200 else 0.0, 1))
        features = {"amount": amount, "country": str(rng.choice(["DE", "FR", "US"]))}
        prediction = int(rng.integers(0, 2))
        out.append(
            prediction_at(
                i, "ck-", model="ckpt", features=features, prediction=prediction, latency_ms=1.0
            )
        )
    return out


def _produce(bootstrap: str, topic: str, events: list[PredictionLogged]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for e in events:
        producer.produce(topic, key=e.prediction_id.encode(), value=encode_event(e), partition=0)
    assert producer.flush(10) == 0


def _spawn(settings: CommonSettings, group: str, *extra: str) -> subprocess.Popen[bytes]:
    args = ["--window-events", "300", "--warmup-events", "200", "--group-id", group]
    return spawn_service("drift", service_env(settings, "INFO"), *args, *extra)


def _committed(bootstrap: str, group: str, topics: Topics) -> int:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topics.predictions, p) for p in range(3)]
        return sum(max(0, tp.offset) for tp in probe.committed(parts, timeout=30))
    finally:
        probe.close()


def test_kill_9_mid_window_then_restart_gives_the_uninterrupted_verdict(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
) -> None:
    events = _events(500)
    group = f"drift-{uuid.uuid4().hex[:8]}"
    checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)
    assignment = partition_name(0)
    _produce(servers.kafka_bootstrap, topics.predictions, events[:350])

    first = _spawn(settings, group, "--checkpoint-interval", "0.3")
    try:
        deadline = time.monotonic() + 120  # a process start and group join, under load
        consumed = committed = 0
        while time.monotonic() < deadline and (consumed < 350 or committed < 350):
            time.sleep(0.3)
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            saved = checkpoints.load(group, assignment)
            consumed = sum(
                v for k, v in (saved or {}).get("offsets", {}).items() if "predictions" in k
            )
            committed = _committed(servers.kafka_bootstrap, group, topics)
        assert consumed == committed == 350, "the first run did not consume everything"
    finally:
        kill_9(first)
    saved = checkpoints.load(group, assignment)
    assert saved is not None
    (monitor,) = saved["state"]["monitors"]
    assert monitor[2]["window"]["n_events"] == 150  # killed mid-window

    _produce(servers.kafka_bootstrap, topics.predictions, events[350:])
    second = _spawn(settings, group, "--idle-exit", "4")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()[-2000:]

    msgs = read_to_end(servers.kafka_bootstrap, topics.drift_signals)  # the service exited
    got = {
        (s.feature, s.test): s
        for s in (decode_event(DriftSignal, m.value()) for m in msgs)
        if s.test in WINDOW_TESTS
    }
    uninterrupted = {
        (s.feature, s.test): s
        for s in DriftProcessor(CONFIG, worker="drift-0").run(
            events, DriftState(stream=partition_name(0)), flush=False
        )
        if isinstance(s, DriftSignal) and s.test in WINDOW_TESTS
    }
    assert set(got) == {
        ("amount", "ks"),
        ("country", "chi_square"),
        ("prediction", "chi_square"),
        (None, "drifted_share"),
    }, err.decode()[-4000:]
    assert got == uninterrupted  # same event ids, statistics, p-values, verdicts
    assert got[("amount", "ks")].drift_detected and got[("amount", "ks")].n_current == 300
    assert not got[("country", "chi_square")].drift_detected
