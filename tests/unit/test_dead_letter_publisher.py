"""Dead-letter publishing never raises: oversize values are truncated with size + hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.contracts.dead_letter import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    PROCESS_ERROR,
    PROCESS_STAGE,
    DeadLetter,
)
from tests.support.kafka import FakeMessage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeProducer:
    """Raises like librdkafka: MSG_SIZE_TOO_LARGE above ``limit`` bytes."""

    def __init__(self, limit: int = 1_000_000, fail_always: bool = False) -> None:
        self.limit = limit
        self.fail_always = fail_always
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kw: Any) -> None:
        if self.fail_always:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC))
        if len(kw["value"] or b"") > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append({"topic": topic, **kw})

    def poll(self, timeout: float = 0) -> int:
        return 0


def _letter() -> DeadLetter:
    return DeadLetter(
        reason="payload is too large",
        error_kind="too_large",
        stage="validator",
        source_topic="t",
        source_partition=0,
        source_offset=7,
        failed_at=T0,
    )


def test_a_value_over_a_megabyte_is_stored_truncated_with_size_and_hash() -> None:
    producer = FakeProducer()
    value = b"x" * 1_000_001
    stored = DeadLetterPublisher(producer, "dlq", "validator").publish_raw(b"k", value, _letter())
    assert stored.truncated and stored.original_size == len(value)
    assert stored.original_sha256 == hashlib.sha256(value).hexdigest()
    [record] = producer.sent
    assert record["value"] == value[:MAX_DEAD_LETTER_VALUE_BYTES] and record["key"] == b"k"
    assert DeadLetter.from_headers(record["headers"]) == stored


def test_a_produce_error_shrinks_the_value_then_gives_up_without_raising() -> None:
    small_limit = FakeProducer(limit=100_000)
    stored = DeadLetterPublisher(small_limit, "dlq", "drift").publish_raw(
        None, b"y" * 300_000, _letter()
    )
    assert stored.truncated and stored.original_size == 300_000
    assert len(small_limit.sent[0]["value"]) < 100_000
    broken = DeadLetterPublisher(FakeProducer(fail_always=True), "dlq", "drift")
    broken.publish_raw(None, b"z", _letter())
    assert broken.failures == 1


def test_small_values_are_unchanged_and_headers_roundtrip() -> None:
    producer = FakeProducer()
    stored = DeadLetterPublisher(producer, "dlq", "validator").publish_raw(b"k", b"{}", _letter())
    assert not stored.truncated and producer.sent[0]["value"] == b"{}"
    assert DeadLetter.from_headers(producer.sent[0]["headers"]) == _letter()


def fake_message() -> FakeMessage:
    return FakeMessage(b'{"a": 1}', topic_="preds", partition_=2, offset_=41)


def test_a_processing_failure_names_the_stage_the_service_and_the_exception() -> None:
    producer = FakeProducer()
    publisher = DeadLetterPublisher(producer, "dlq", "metrics")
    letter = publisher.publish_failure(fake_message(), OverflowError("int too large"), T0)  # type: ignore[arg-type]
    assert letter.stage == PROCESS_STAGE and letter.error_kind == PROCESS_ERROR
    assert letter.service == "metrics" and letter.exception_type == "builtins.OverflowError"
    assert letter.reason == "OverflowError: int too large"
    assert producer.sent[0]["value"] == b'{"a": 1}'
    assert DeadLetter.from_headers(producer.sent[0]["headers"]) == letter
