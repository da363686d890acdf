"""Checkpoint cadence (issue 11 item 11): stretched by CPU cost only, capped."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from modelguard.adapters.cadence import CheckpointCadence
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import PartitionedRuntime, RuntimeOptions
from modelguard.contracts.predictions import LabelObserved


@given(st.floats(0, 1e6), st.floats(0.01, 10), st.floats(0.01, 1), st.floats(1, 100))
def test_the_interval_stays_between_base_and_cap(
    cpu: float, base: float, share: float, factor: float
) -> None:
    cadence = CheckpointCadence(base, share, factor)
    interval = cadence.record(cpu)
    assert base <= interval <= base * factor + 1e-12
    assert interval == pytest.approx(min(base * factor, max(base, cpu / share)))


def test_invalid_cadence_is_refused() -> None:
    with pytest.raises(ValueError):
        CheckpointCadence(1.0, max_share=0.0)


class SlowFlushProducer:
    """A flush that blocks (a broker outage) without using CPU."""

    def flush(self, timeout: float = 0) -> int:
        time.sleep(0.5)
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


class NoCommits:
    def __init__(self) -> None:
        self.commits: list[list[TopicPartition]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.append(offsets)


class Saver:
    def __init__(self) -> None:
        self.saved: list[dict[str, int]] = []

    def restore(self, partitions: Sequence[int]) -> dict[str, int]:
        return {}

    def release(self, partitions: Sequence[int]) -> None:
        pass

    def handle(self, received: Received[Any]) -> None:
        pass

    def save(self, offsets: Mapping[str, int]) -> bool:
        self.saved.append(dict(offsets))
        return True

    def tick(self) -> None:
        pass


def test_time_blocked_in_a_flush_does_not_stretch_the_interval() -> None:
    runtime: PartitionedRuntime[LabelObserved] = PartitionedRuntime(
        "127.0.0.1:9",
        CollectorRegistry(),
        RuntimeOptions(
            service="t",
            group_id="g",
            models={"labels": LabelObserved},
            dead_letter_topic="dlq",
            checkpoint_interval=0.1,
            checkpoint_max_share=0.05,
        ),
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    saver = Saver()
    runtime._processor = saver
    runtime.consumer.close()  # no broker here: commits go to a stand-in
    runtime.consumer = NoCommits()  # type: ignore[assignment]
    runtime.producer = SlowFlushProducer()  # type: ignore[assignment]
    runtime.assigned = [TopicPartition("labels", 0)]
    runtime.offsets = {"labels:0": 5}
    started = time.monotonic()
    assert runtime.checkpoint()
    assert time.monotonic() - started >= 0.5  # it did block...
    # ...but the old rule (wall time / share) would wait 10 s: the CPU rule keeps 0.1 s
    assert runtime.cadence.interval == pytest.approx(0.1)
    assert saver.saved == [{"labels:0": 5}]
    assert runtime.checkpoint() and len(saver.saved) == 1  # nothing new: nothing saved
    assert runtime.consumer.commits == [[TopicPartition("labels", 0, 5)]]  # type: ignore[attr-defined]
