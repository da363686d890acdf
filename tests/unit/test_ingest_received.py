"""ValidatingConsumer: broker timestamps on Received, the kafka dependency gauge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError
from prometheus_client import CollectorRegistry

from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.dependency import DEPENDENCY_UP, DependencyGuard
from modelguard.adapters.ingest import IngestMetrics, ValidatingConsumer
from modelguard.contracts.predictions import LabelObserved
from tests.support.kafka import FakeMessage

RAW = b'{"prediction_id":"p1","label":1,"event_time":"2026-01-01T00:00:00Z"}'


def message(value: bytes | None = RAW, error: KafkaError | None = None) -> FakeMessage:
    """A message of ``labels`` partition 1 at offset 7, with a create time."""
    stamp = (TIMESTAMP_CREATE_TIME, 1_767_225_600_123)
    return FakeMessage(value, "labels", 1, 7, error_=error, timestamp_=stamp)


class Consumer:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches

    def subscribe(self, topics: list[str]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0)

    def store_offsets(self, offsets: Any) -> None:
        pass


def _ingest(
    batches: list[list[FakeMessage]], registry: CollectorRegistry
) -> ValidatingConsumer[Any]:
    return ValidatingConsumer(
        Consumer(batches),  # type: ignore[arg-type]
        {"labels": LabelObserved},
        DeadLetterPublisher(None, "dlq", "t"),  # type: ignore[arg-type]
        IngestMetrics(registry, "t"),
        lambda: datetime(2026, 1, 1, tzinfo=UTC),
        kafka=DependencyGuard("kafka", registry),
    )


def test_received_carries_the_broker_timestamp_and_the_raw_message() -> None:
    registry = CollectorRegistry()
    [r] = _ingest([[message()]], registry).poll()
    assert r.timestamp_ms == 1_767_225_600_123
    assert r.message is not None and r.message.value() == RAW
    assert (r.topic, r.partition, r.offset, r.key) == ("labels", 1, 7, b"p1")


def test_brokers_down_is_reported_until_records_flow_again() -> None:
    registry = CollectorRegistry()
    down = message(error=KafkaError(KafkaError._ALL_BROKERS_DOWN))
    ingest = _ingest([[down], [], [message()]], registry)

    def up() -> float | None:
        return registry.get_sample_value(DEPENDENCY_UP, {"dependency": "kafka"})

    assert ingest.poll() == [] and up() == 0.0
    assert ingest.poll() == [] and up() == 0.0
    assert len(ingest.poll()) == 1 and up() == 1.0
