"""Fault tests of the shared partitioned runtime on real Kafka (issue 11 items 5, 7).

(a) A second metrics worker joins the group and leaves again mid-stream: every
    assignment restores from the changelog, so no partition is replayed from offset 0
    (events handled == events produced) and no window id is published with two contents.
(d) An invalid message just over 1,000,000 bytes and a valid event that makes the
    processor raise are dead-lettered (truncated with size + hash; stage ``process``
    with the exception) and the service carries on.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, encode_event
from modelguard.contracts.dead_letter import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    PROCESS_ERROR,
    PROCESS_STAGE,
    DeadLetter,
)
from modelguard.core.drift import DriftConfig
from modelguard_services.drift.app import DriftService
from modelguard_services.metrics.app import MetricsService
from modelguard_services.metrics.settings import MetricsSettings
from tests.integration.test_metrics_service import (
    Served,
    assert_matches_oracle,
    collect_windows,
    generate,
    merged_tumbling,
    prediction_event,
    produce,
    window_oracle,
)
from tests.support.kafka import read_all
from tests.support.metrics_service import metrics_settings_on
from tests.support.servers import Servers
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics_settings(servers: Servers, topics: Topics) -> Iterator[MetricsSettings]:
    yield from metrics_settings_on(servers, topics)


class Worker:
    def __init__(self, settings: MetricsSettings) -> None:
        self.service = MetricsService(settings, CollectorRegistry())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def test_a_worker_joining_and_leaving_replays_nothing(
    servers: Servers, topics: Topics, metrics_settings: MetricsSettings
) -> None:
    traffic = generate(31, 6000, accuracy={"v1": 0.85, "v2": 0.7}, spacing_s=0.02)
    n_events = len(traffic) + sum(1 for s in traffic if s.label is not None) + 6
    first = Worker(metrics_settings)
    second: Worker | None = None
    try:
        wait_for(lambda: first.service.runtime.assignments >= 1, 60, "first assignment")
        produce(servers.kafka_bootstrap, topics, traffic[:2000], partitions=3)
        wait_for(lambda: first.service.processed > 1000, 60, "first worker consuming")
        second = Worker(metrics_settings)  # joins: rebalance
        wait_for(lambda: second is not None and bool(second.service.runtime.assigned), 60, "join")
        produce(servers.kafka_bootstrap, topics, traffic[2000:4000], partitions=3)
        wait_for(
            lambda: second is not None and second.service.processed > 0, 60, "second consuming"
        )
        second.close()  # leaves: rebalance again
        produce(servers.kafka_bootstrap, topics, traffic[4000:], partitions=3)
        wait_for(
            lambda: (
                first.service.runtime.offsets
                and sum(first.service.runtime.offsets.values()) >= n_events + 12
            ),
            120,
            "first worker at the end",
        )
    finally:
        first.close()
        if second is not None and second.thread.is_alive():
            second.close()
    assert first.service.runtime.assignments >= 3  # start, join, leave
    assert second is not None and second.service.runtime.restores >= 1
    # each produce() ends with 6 ticks; nothing is handled twice (no replay from 0)
    produced = n_events + 12
    assert first.service.processed + second.service.processed == produced
    windows = collect_windows(servers.kafka_bootstrap, topics, 1)
    merged = merged_tumbling(windows)  # asserts: no window id with two contents
    # the first chunk's windows (closed by its far-future ticks, which make the later
    # chunks late) equal the oracle's
    oracle = window_oracle(traffic[:2000], 60.0, metrics_settings.metrics_label_ttl_s)
    assert_matches_oracle({k: v for k, v in merged.items() if k in oracle}, oracle)


def _boom_once(handle: Callable[..., Any], poison: str) -> Callable[..., Any]:
    """``handle`` raising for the prediction ``poison`` (an event, or the decoded field
    tuple the metrics core takes, whose first field is the prediction id)."""

    def wrapped(event: Any, *args: Any) -> Any:
        pid = event[0] if isinstance(event, tuple) else getattr(event, "prediction_id", None)
        if pid == poison:
            raise OverflowError(f"cannot fold {poison}")
        return handle(event, *args)

    return wrapped


def _letters(servers: Servers, topics: Topics, keys: set[bytes]) -> dict[bytes | None, Any]:
    """The dead letters by key, once all of ``keys`` are there (a replay may repeat one)."""
    deadline = time.monotonic() + 60
    while True:
        found = {m.key(): m for m in read_all(servers.kafka_bootstrap, topics.dead_letter, 2)}
        if keys <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _prediction(pid: str) -> bytes:
    return encode_event(prediction_event(Served(pid, "fraud", "v1", 1.0, 1, 0.8, 1, 2.0)))


def _send_hostile_then_valid(servers: Servers, topics: Topics, poison: str) -> bytes:
    oversize = b'{"prediction_id": "' + b"x" * 1_000_100 + b'"}'
    producer = Producer(
        {"bootstrap.servers": servers.kafka_bootstrap, "message.max.bytes": 2_000_000}
    )
    producer.produce(topics.predictions, key=b"huge", value=oversize, partition=0)
    producer.produce(
        topics.predictions, key=poison.encode(), value=_prediction(poison), partition=0
    )
    for i in range(5):
        producer.produce(
            topics.predictions, key=f"ok{i}".encode(), value=_prediction(f"ok{i}"), partition=0
        )
    assert producer.flush(30) == 0
    return oversize


def _check_letters(
    servers: Servers, topics: Topics, oversize: bytes, service: str, poison: str
) -> None:
    letters = _letters(servers, topics, {b"huge", poison.encode()})
    huge = DeadLetter.from_headers(letters[b"huge"].headers())
    assert huge.truncated and huge.original_size == len(oversize)
    assert huge.original_sha256 == hashlib.sha256(oversize).hexdigest()
    assert letters[b"huge"].value() == oversize[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert huge.stage == service and huge.error_kind == "too_large"
    failed = DeadLetter.from_headers(letters[poison.encode()].headers())
    assert failed.stage == PROCESS_STAGE and failed.error_kind == PROCESS_ERROR
    assert failed.service == service and failed.exception_type == "builtins.OverflowError"
    assert failed.reason == f"OverflowError: cannot fold {poison}"
    assert letters[poison.encode()].value() == _prediction(poison)


def test_metrics_dead_letters_oversize_and_failing_events_and_carries_on(
    servers: Servers, topics: Topics, metrics_settings: MetricsSettings
) -> None:
    worker = Worker.__new__(Worker)
    worker.service = MetricsService(metrics_settings, CollectorRegistry())
    processor = worker.service.processor
    # the service folds decoded predictions with ``prediction`` (batches, ADR 0010)
    processor.prediction = _boom_once(processor.prediction, "poison-m")  # type: ignore[method-assign]
    worker.stop = threading.Event()
    worker.thread = threading.Thread(target=worker.service.run, args=(worker.stop,), daemon=True)
    worker.thread.start()
    try:
        oversize = _send_hostile_then_valid(servers, topics, "poison-m")
        _check_letters(servers, topics, oversize, "metrics", "poison-m")
        runtime = worker.service.runtime
        wait_for(lambda: runtime.process_errors == 1, 30, "the failure")
        wait_for(lambda: sum(runtime.offsets.values()) == 7, 30, "past every message")
        # the failed batch was rewound and replayed event by event: the five valid
        # predictions are in the state once each, the poison not at all
        state = worker.service.states[0]
        assert set(state.pending) == {f"ok{i}" for i in range(5)}
        counted = sum(
            agg.n_predictions
            for by_start in state.windows.values()
            for by_key in by_start.values()
            for agg in by_key.values()
        )
        assert counted == 5 * len(state.windows)  # once per window length
    finally:
        worker.close()


def test_drift_batch_failure_replays_and_dead_letters_only_the_failing_event(
    servers: Servers, topics: Topics, settings: CommonSettings
) -> None:
    service = DriftService(
        settings,
        CollectorRegistry(),
        config=DriftConfig(window_events=200, warmup_events=200),
        group_id=f"g-{topics.prefix}",
        checkpoint_interval=0.2,
    )
    core = service._processor
    original = core.handle_batch

    def handle_batch(events: Any, state: Any, partitions: Any = None) -> Any:
        if any(getattr(e, "prediction_id", None) == "poison-d" for e in events):
            raise OverflowError("cannot fold poison-d")
        return original(events, state, partitions)

    core.handle_batch = handle_batch  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        oversize = _send_hostile_then_valid(servers, topics, "poison-d")
        _check_letters(servers, topics, oversize, "drift", "poison-d")
        wait_for(lambda: service.runtime.process_errors == 1, 30, "the failure")
        wait_for(lambda: sum(service.runtime.offsets.values()) == 7, 30, "past every message")
        state = service.partitions.state(0)  # everything went to partition 0
        warm = sum(len(v) for v in state.warmup.values())
        assert warm == 5  # the five valid predictions, once each (replayed, not doubled)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
