"""Small raw-Kafka helpers for tests (independent of the code under test)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition

from modelguard.adapters.kafka import KafkaConnection, client_config


def read_all(
    bootstrap: KafkaConnection, topic: str, expected: int, timeout: float = 30.0
) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages (or timeout)."""
    consumer = Consumer(
        client_config(
            bootstrap,
            **{
                "group.id": f"{topic}-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


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
