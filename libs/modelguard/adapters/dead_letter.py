"""Publishing rejected messages to the dead-letter topic, byte for byte, with the reason.

Publishing never raises: a value too large for a Kafka message is stored truncated
(with its original size and SHA-256, see ``contracts.dead_letter``), a full local queue
is drained and retried, and any other produce error is retried with a smaller value
and, failing that, logged and counted in ``failures`` (the message's offset still
moves on: a dead-letter topic that cannot be written must not stop the service).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from modelguard.contracts.dead_letter import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    PROCESS_ERROR,
    PROCESS_STAGE,
    DeadLetter,
)

log = structlog.get_logger("modelguard.dead_letter")
#: After a produce error other than a full queue, the value is cut to this size once more.
_FALLBACK_VALUE_BYTES = 16 * 1024


def truncate(
    value: bytes | None, limit: int, letter: DeadLetter
) -> tuple[bytes | None, DeadLetter]:
    """``value`` cut to ``limit`` bytes and ``letter`` saying so (unchanged if it fits)."""
    if value is None or len(value) <= limit:
        return value, letter
    original = letter.original_size if letter.truncated else len(value)
    digest = letter.original_sha256 if letter.truncated else hashlib.sha256(value).hexdigest()
    marked = letter.model_copy(
        update={"truncated": True, "original_size": original, "original_sha256": digest}
    )
    return value[:limit], marked


class DeadLetterPublisher:
    """Sends a rejected message to ``topic`` with ``dlq.*`` headers (see DeadLetter)."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        stage: str,
        *,
        max_value_bytes: int = MAX_DEAD_LETTER_VALUE_BYTES,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._max_value = max_value_bytes
        self.failures = 0

    def publish(
        self,
        message: Message,
        *,
        kind: str,
        reason: str,
        now: datetime,
        stage: str | None = None,
        exception_type: str | None = None,
    ) -> DeadLetter:
        """Dead-letter ``message``; the original key and value are kept unchanged (up to
        the size limit)."""
        letter = DeadLetter(
            reason=reason[:4096],
            error_kind=kind[:64],
            stage=stage or self._stage,
            source_topic=message.topic() or "",
            source_partition=message.partition() if message.partition() is not None else -1,
            source_offset=message.offset() if message.offset() is not None else -1,
            failed_at=now,
            service=self._stage if stage is not None else None,
            exception_type=exception_type[:256] if exception_type else None,
        )
        return self.publish_raw(message.key(), message.value(), letter)

    def publish_failure(self, message: Message, error: BaseException, now: datetime) -> DeadLetter:
        """Dead-letter a valid event whose processing raised ``error`` (stage ``process``)."""
        return self.publish(
            message,
            kind=PROCESS_ERROR,
            reason=f"{type(error).__name__}: {error}",
            now=now,
            stage=PROCESS_STAGE,
            exception_type=f"{type(error).__module__}.{type(error).__qualname__}",
        )

    def publish_raw(self, key: bytes | None, value: bytes | None, letter: DeadLetter) -> DeadLetter:
        """Dead-letter bytes that did not come from a consumed message (e.g. the SDK);
        returns the letter as stored (marked when the value was truncated)."""
        value, letter = truncate(value, self._max_value, letter)
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=value,
                    key=key,
                    headers=letter.to_headers(),
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                if value is not None and len(value) > _FALLBACK_VALUE_BYTES:
                    log.warning("dead_letter_shrunk", topic=self._topic, error=str(exc))
                    value, letter = truncate(value, _FALLBACK_VALUE_BYTES, letter)
                    continue
                self._failed(letter, exc)
                break
        self._producer.poll(0)
        return letter

    def _failed(self, letter: DeadLetter, error: object) -> None:
        self.failures += 1
        log.error(
            "dead_letter_failed",
            topic=self._topic,
            source_topic=letter.source_topic,
            partition=letter.source_partition,
            offset=letter.source_offset,
            error=str(error),
        )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failures += 1
            log.error(
                "dead_letter_undelivered",
                topic=self._topic,
                error=str(err),
                size=len(msg.value() or b""),
            )
