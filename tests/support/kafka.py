"""Small raw-Kafka helpers for tests (independent of the code under test)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

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
