"""Publishing rejected messages to the dead-letter topic, byte for byte, with the reason."""

from __future__ import annotations

from datetime import datetime

from confluent_kafka import Message, Producer

from modelguard.contracts.dead_letter import DeadLetter


class DeadLetterPublisher:
    """Sends a rejected message to ``topic`` with ``dlq.*`` headers (see DeadLetter)."""

    def __init__(self, producer: Producer, topic: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage

    def publish(self, message: Message, *, kind: str, reason: str, now: datetime) -> DeadLetter:
        """Dead-letter ``message``; the original key and value are kept unchanged."""
        letter = DeadLetter(
            reason=reason[:4096],
            error_kind=kind,
            stage=self._stage,
            source_topic=message.topic() or "",
            source_partition=message.partition() if message.partition() is not None else -1,
            source_offset=message.offset() if message.offset() is not None else -1,
            failed_at=now,
        )
        self.publish_raw(message.key(), message.value(), letter)
        return letter

    def publish_raw(self, key: bytes | None, value: bytes | None, letter: DeadLetter) -> None:
        """Dead-letter bytes that did not come from a consumed message (e.g. the SDK)."""
        while True:
            try:
                self._producer.produce(
                    self._topic, value=value, key=key, headers=letter.to_headers()
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)
