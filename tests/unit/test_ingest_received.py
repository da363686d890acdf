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

RAW = b'{"prediction_id":"p1","label":1,"event_time":"2026-01-01T00:00:00Z"}'


class Msg:
    def __init__(self, value: bytes | None = RAW, error: KafkaError | None = None) -> None:
        self._value, self._error = value, error

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return "labels"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return 7

    def key(self) -> bytes:
        return b"p1"

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 1_767_225_600_123


class Consumer:
    def __init__(self, batches: list[list[Msg]]) -> None:
        self.batches = batches

    def subscribe(self, topics: list[str]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        return self.batches.pop(0)

    def store_offsets(self, offsets: Any) -> None:
        pass


def _ingest(batches: list[list[Msg]], registry: CollectorRegistry) -> ValidatingConsumer[Any]:
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
    [r] = _ingest([[Msg()]], registry).poll()
    assert r.timestamp_ms == 1_767_225_600_123
    assert r.message is not None and r.message.value() == RAW
    assert (r.topic, r.partition, r.offset, r.key) == ("labels", 1, 7, b"p1")


def test_brokers_down_is_reported_until_records_flow_again() -> None:
    registry = CollectorRegistry()
    down = Msg(error=KafkaError(KafkaError._ALL_BROKERS_DOWN))
    ingest = _ingest([[down], [], [Msg()]], registry)

    def up() -> float | None:
        return registry.get_sample_value(DEPENDENCY_UP, {"dependency": "kafka"})

    assert ingest.poll() == [] and up() == 0.0
    assert ingest.poll() == [] and up() == 0.0
    assert len(ingest.poll()) == 1 and up() == 1.0
