"""Reading a topic (or some of its partitions) to its end: restores, outboxes, tails.

:func:`read_to_end` assigns the partitions (no consumer group membership, nothing
committed), notes each partition's high watermark, and yields every record up to it.
A topic created a moment ago may not be in the metadata yet: the reader waits for it
until ``timeout``. Raises :class:`TopicReadError` when the end is not reached in time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from modelguard.adapters.kafka import KafkaConnection, client_config
from modelguard.errors import DependencyError


class TopicReadError(DependencyError):
    """The topic could not be read to its end in time."""


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    while True:
        try:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                return sorted(meta.partitions)
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise TopicReadError(f"topic {topic!r} has no partitions (not created?)")
        time.sleep(0.2)


def read_to_end(
    connection: KafkaConnection,
    topic: str,
    partitions: Iterable[int] | None = None,
    *,
    tail: int | None = None,
    timeout: float = 30.0,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[Message]:
    """Records of ``topic`` (all partitions, or ``partitions``) up to the high watermarks
    seen at the start; ``tail`` reads only the last ``tail`` records of each partition.
    ``settings`` are extra librdkafka settings (with dots), e.g. fetch sizes."""
    consumer = Consumer(
        client_config(
            connection,
            **{
                "group.id": f"modelguard-reader-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                **(settings or {}),
            },
        )
    )
    deadline = time.monotonic() + timeout
    try:
        wanted = list(partitions) if partitions is not None else None
        parts = wanted if wanted is not None else _partitions(consumer, topic, deadline)
        ends: dict[int, int] = {}
        assign: list[TopicPartition] = []
        for p in parts:
            while True:
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise TopicReadError(f"no watermarks for {topic}[{p}]") from None
                    time.sleep(0.2)
            if high > low:
                ends[p] = high
                start = OFFSET_BEGINNING if tail is None else max(low, high - tail)
                assign.append(TopicPartition(topic, p, start))
        if not assign:
            return
        consumer.assign(assign)
        while ends:
            if time.monotonic() > deadline:
                raise TopicReadError(f"could not read {topic} to its end ({ends} left)")
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is not None:
                    continue
                p, offset = msg.partition() or 0, msg.offset() or 0
                end = ends.get(p)
                if end is None:
                    continue
                if offset < end:
                    yield msg
                if offset + 1 >= end:
                    del ends[p]
    finally:
        consumer.close()
