"""The edge of every processor: consume a batch, validate, dead-letter what is invalid.

:class:`ValidatingConsumer` never raises on a bad message: an undecodable or invalid
record goes to the dead-letter topic with its reason and origin and is counted; the
valid ones are handed to the caller, who stores their offsets once they are handled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.prometheus import counter
from modelguard.contracts.codec import DecodeError, decode_event
from modelguard.contracts.limits import LIMITS, Limits
from modelguard.contracts.telemetry import (
    MODELGUARD_CONSUMER_ERRORS,
    MODELGUARD_DEAD_LETTERS,
    MODELGUARD_EVENTS_CONSUMED,
)

#: The decoded form of an event: a contract ``Event`` unless the consumer is given
#: decoders that return another form (e.g. the field tuples of ``contracts.fastdecode``).
E = TypeVar("E")
log = structlog.get_logger("modelguard.ingest")
#: Consumer errors that mean "no broker reachable" (reported on the dependency gauge).
_BROKERS_DOWN = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT})


class IngestMetrics:
    """Counters of consumed and dead-lettered events, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.events = counter(MODELGUARD_EVENTS_CONSUMED, registry)
        self.dead_letters = counter(MODELGUARD_DEAD_LETTERS, registry)
        self.consumer_errors = counter(MODELGUARD_CONSUMER_ERRORS, registry)


class Received(NamedTuple, Generic[E]):
    """A valid event with where it came from (a tuple: built once per event, so cheap).

    ``timestamp_ms`` is the record's broker/producer timestamp (ms since the epoch; -1
    when the record has none), to bound event time against ingest time. ``message`` is
    the raw record, for dead-lettering the original bytes when handling fails.
    """

    event: E
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int = -1
    message: Message | None = None


def _decoder(model: type[Any]) -> Callable[[bytes | None, Limits], Any]:
    def decode(raw: bytes | None, limits: Limits) -> Any:
        return decode_event(model, raw, limits)

    return decode


class ValidatingConsumer(Generic[E]):
    """Consumes ``topics``, decoding each topic's messages as its event model.

    ``clock`` gives the dead-letter timestamp (injected, so tests control time).
    """

    def __init__(
        self,
        consumer: Consumer,
        models: Mapping[str, type[E]],
        dead_letters: DeadLetterPublisher,
        metrics: IngestMetrics,
        clock: Callable[[], datetime],
        limits: Limits = LIMITS,
        *,
        kafka: DependencyGuard | None = None,
        subscribe: bool = True,
        decoders: Mapping[str, Callable[[bytes | None, Limits], E]] | None = None,
    ) -> None:
        """``models``: topic -> contract model (``E`` itself unless ``decoders`` give
        another form of the events)."""
        self._consumer = consumer
        self._models = dict(models)
        #: per topic: raw bytes -> event (``decode_event`` as the topic's model unless a
        #: decoder with the same acceptance is given, e.g. ``contracts.fastdecode``)
        self._decoders: dict[str, Callable[[bytes | None, Limits], E]] = {
            topic: (decoders or {}).get(topic) or _decoder(model)
            for topic, model in self._models.items()
        }
        self._dlq = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._limits = limits
        self._kafka = kafka
        if subscribe:
            self._consumer.subscribe(list(self._models))

    @property
    def dead_letters(self) -> DeadLetterPublisher:
        return self._dlq

    @property
    def metrics(self) -> IngestMetrics:
        return self._metrics

    def poll(self, max_messages: int = 500, timeout: float = 0.5) -> list[Received[E]]:
        """Up to ``max_messages`` valid events; invalid ones are dead-lettered, and their
        offsets stored at once (they are done)."""
        out: list[Received[E]] = []
        valid_per_topic: dict[str, int] = {}
        decoders = self._decoders
        limits = self._limits
        new = tuple.__new__
        records = 0
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            err = msg.error()
            if err is not None:
                code = err.code()
                if code != KafkaError._PARTITION_EOF:
                    self._metrics.consumer_errors.labels(self._metrics.service, err.name()).inc()
                    log.warning("consumer_error", error=str(err))
                    if self._kafka is not None and code in _BROKERS_DOWN:
                        self._kafka.mark_down(KafkaException(err))
                continue
            records += 1
            topic = msg.topic() or ""
            try:
                event = decoders[topic](msg.value(), limits)
            except DecodeError as exc:
                self._dead_letter(msg, exc)
                continue
            valid_per_topic[topic] = valid_per_topic.get(topic, 0) + 1
            out.append(  # Received(...) without its Python-level __new__ (per record)
                new(
                    Received,
                    (
                        event,
                        topic,
                        msg.partition() or 0,
                        msg.offset() or 0,
                        msg.key(),
                        msg.timestamp()[1],
                        msg,
                    ),
                )
            )
        if records and self._kafka is not None and not self._kafka.up:
            self._kafka.mark_up()
        # One counter update per topic and batch: a labelled-child lookup per message
        # costs as much as a third of the decode itself.
        for topic, n in valid_per_topic.items():
            self._metrics.events.labels(self._metrics.service, topic, "valid").inc(n)
        return out

    def _dead_letter(self, msg: Message, exc: DecodeError) -> None:
        topic = msg.topic() or ""
        letter = self._dlq.publish(msg, kind=exc.kind, reason=exc.reason, now=self._clock())
        self._metrics.events.labels(self._metrics.service, topic, "invalid").inc()
        self._metrics.dead_letters.labels(self._metrics.service, topic, exc.kind).inc()
        log.info(
            "dead_lettered",
            source_topic=topic,
            partition=letter.source_partition,
            offset=letter.source_offset,
            error_kind=exc.kind,
            reason=exc.reason,
        )
        self._store(topic, letter.source_partition, letter.source_offset)

    def _store(self, topic: str, partition: int, offset: int) -> None:
        self._consumer.store_offsets(offsets=[TopicPartition(topic, partition, offset + 1)])

    def done(self, received: list[Received[E]]) -> None:
        """Mark events as handled: their offsets may now be committed."""
        latest: dict[tuple[str, int], int] = {}
        for r in received:
            key = (r.topic, r.partition)
            latest[key] = max(latest.get(key, -1), r.offset)
        if latest:
            self._consumer.store_offsets(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in latest.items()]
            )

    def close(self) -> None:
        self._consumer.close()
