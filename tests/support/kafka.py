"""Small raw-Kafka helpers for tests (independent of the code under test)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from modelguard.adapters.kafka import KafkaConnection, client_config


def _reader(bootstrap: KafkaConnection, topic: str) -> Consumer:
    """A consumer outside any group: it is assigned the partitions, so no group join or
    rebalance (seconds on a loaded machine) stands between a test and the records."""
    return Consumer(
        client_config(
            bootstrap,
            **{"group.id": f"{topic}-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False},
        )
    )


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """The partitions of ``topic``, waiting (until ``deadline``) for its metadata."""
    while True:
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException:  # a slow broker: ask again until the deadline
            meta = None
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        if time.monotonic() >= deadline:
            raise AssertionError(f"topic {topic} has no partitions (metadata: {meta})")
        time.sleep(0.1)


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """Low and high watermark of ``tp``, retried while its leader is not known yet (a
    topic just created)."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def read_all(
    bootstrap: KafkaConnection, topic: str, expected: int, timeout: float = 30.0
) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages (or timeout).

    To read what a stopped writer wrote, prefer :func:`read_to_end`, which cannot
    return early on a slow machine."""
    deadline = time.monotonic() + timeout
    consumer = _reader(bootstrap, topic)
    out: list[Message] = []
    try:
        parts = _partitions(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


def read_to_end(bootstrap: KafkaConnection, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every message of ``topic`` up to its end offsets as of this call (what a writer
    that has stopped or flushed wrote), however long that takes on a loaded machine;
    fails after ``timeout`` seconds instead of returning part of it."""
    deadline = time.monotonic() + timeout
    consumer = _reader(bootstrap, topic)
    try:
        ends: dict[int, int] = {}
        for p in _partitions(consumer, topic, deadline):
            low, high = _watermarks(consumer, TopicPartition(topic, p), deadline)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Message] = []
        while True:
            at = {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())}
            if all(at.get(p, -1) >= end for p, end in ends.items()):
                return out
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out reading {topic} to offsets {ends}: at {at}")
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()


def wait_topics_ready(
    bootstrap: KafkaConnection, topics: list[str], partitions: int, timeout: float = 120.0
) -> None:
    """Wait until the metadata shows every one of ``topics`` with ``partitions``
    partitions, each with a leader. ``create_topics`` returns before that; a service
    started at once (as a test does) could see no partitions or no leader yet, which
    never happens to one started on provisioned topics."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": f"ready-{uuid.uuid4().hex[:8]}"}))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                meta = consumer.list_topics(timeout=10).topics
            except KafkaException:  # a slow broker: ask again until the deadline
                meta = {}
            missing = [
                t
                for t in topics
                if t not in meta
                or meta[t].error is not None
                or len(meta[t].partitions) != partitions
                or any(p.leader < 0 or p.error is not None for p in meta[t].partitions.values())
            ]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"topics without partitions or leaders: {missing}")
            time.sleep(0.1)
    finally:
        consumer.close()


@dataclass
class FakeMessage:
    """A consumed message, answering what ``confluent_kafka.Message`` answers, for unit
    tests of code that reads one (fields end in ``_`` where the method takes the name)."""

    value_: bytes | None
    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None = b"p1"
    error_: KafkaError | None = None
    timestamp_: tuple[int, int] = (TIMESTAMP_NOT_AVAILABLE, 0)

    def error(self) -> KafkaError | None:
        return self.error_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def timestamp(self) -> tuple[int, int]:
        return self.timestamp_


def end_offsets(bootstrap: KafkaConnection, topics: list[str]) -> dict[str, int]:
    """The next offset of every partition of ``topics`` (``topic:partition`` keys, the
    runtime's offset form)."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": f"ends-{uuid.uuid4().hex[:8]}"}))
    try:
        out: dict[str, int] = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                out[f"{topic}:{p}"] = high
        return out
    finally:
        consumer.close()


@dataclass
class FakeTopicMetadata:
    """What unit tests' fake consumers return for one topic of ``list_topics``."""

    partitions: dict[int, object]


@dataclass
class FakeClusterMetadata:
    topics: dict[str, FakeTopicMetadata]


def fake_metadata(partitions: dict[str, int]) -> FakeClusterMetadata:
    """``list_topics``' answer for topics with these partition counts."""
    return FakeClusterMetadata(
        {t: FakeTopicMetadata(dict.fromkeys(range(n))) for t, n in partitions.items()}
    )
