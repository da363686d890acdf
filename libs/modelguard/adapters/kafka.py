"""Thin confluent-kafka helpers: configured clients, topic provisioning, offsets.

Producers are idempotent (``enable.idempotence``) and compress with lz4; consumers do
not auto-store offsets: a service stores an offset only after the message is handled
(at-least-once), and deduplicates by event id where double counting matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 10,
    "compression.type": "lz4",
}

#: Where and how to reach the brokers: a bootstrap string ("host:port,...") or a mapping of
#: librdkafka settings (``bootstrap.servers`` plus security settings such as
#: ``security.protocol`` and ``sasl.*``), as built by ``CommonSettings.kafka_connection()``.
KafkaConnection = str | Mapping[str, Any]


def client_config(connection: KafkaConnection, **settings: Any) -> dict[str, Any]:
    """librdkafka settings for ``connection`` plus ``settings`` (given with dots).

    Every Kafka client of modelguard (producer, consumer, admin) is configured through this
    one function, so security settings reach all of them.

    >>> client_config("127.0.0.1:9092", **{"group.id": "g"})
    {'bootstrap.servers': '127.0.0.1:9092', 'group.id': 'g'}
    """
    base = {"bootstrap.servers": connection} if isinstance(connection, str) else dict(connection)
    return {**base, **settings}


CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": True,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10_000,
}


#: librdkafka settings of the consumers on the decision path (detection -> routing
#: change), where a record must be handled milliseconds after it is written: idle fetches
#: return after 10 ms instead of 500 ms, a failed fetch (e.g. a topic just created) is
#: retried after 10 ms instead of 500 ms, and small requests are not held back by
#: Nagle's algorithm. Use with :func:`make_low_latency_consumer` (ADR 0013).
LOW_LATENCY_CONSUMER: dict[str, Any] = {
    "fetch.wait.max.ms": 10,
    "fetch.error.backoff.ms": 10,
    "socket.nagle.disable": True,
}


class LowLatencyConsumer(Consumer):
    """A consumer whose ``consume(n, timeout)`` returns as soon as one message is there.

    librdkafka's batch consume waits until ``n`` messages *or* the timeout: with one
    record per incident that is the whole timeout (100 ms for a 0.1 s poll loop), the
    floor measured by ``benchmarks/bench_controller.py``. Here the call waits up to
    ``timeout`` for the first message, then takes what is already fetched, without
    waiting; under load batches are as large as before.
    """

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        first = self.poll(timeout)
        if first is None:
            return []
        if num_messages <= 1:
            return [first]
        return [first, *super().consume(num_messages - 1, 0)]


def make_producer(bootstrap: KafkaConnection, **overrides: Any) -> Producer:
    """An idempotent producer; ``overrides`` are librdkafka settings (dots as ``_``)."""
    conf = client_config(bootstrap, **PRODUCER_DEFAULTS)
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Producer(conf)


def make_consumer(bootstrap: KafkaConnection, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in ``group_id`` that stores offsets only when told to."""
    conf = client_config(bootstrap, **{"group.id": group_id}, **CONSUMER_DEFAULTS)
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Consumer(conf)


def make_low_latency_consumer(
    bootstrap: KafkaConnection, group_id: str, **overrides: Any
) -> Consumer:
    """:func:`make_consumer` for the decision path: :data:`LOW_LATENCY_CONSUMER`
    settings and a :class:`LowLatencyConsumer`."""
    conf = client_config(
        bootstrap, **{"group.id": group_id}, **CONSUMER_DEFAULTS, **LOW_LATENCY_CONSUMER
    )
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return LowLatencyConsumer(conf)


def ensure_topics(
    bootstrap: KafkaConnection,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Existing topics are left as they are (their partition count is not changed, because
    that would break key co-partitioning).
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, config=dict(config or {})) for t in wanted],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: list[str] = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue
            raise
    return created


def delete_topics(bootstrap: KafkaConnection, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics (missing ones are ignored); used by tests and tear-down tooling."""
    admin = AdminClient(client_config(bootstrap))
    names = list(dict.fromkeys(topics))
    if not names:
        return
    for fut in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            if getattr(exc.args[0], "name", lambda: "")() != "UNKNOWN_TOPIC_OR_PART":
                raise


def broker_ready(bootstrap: KafkaConnection, timeout: float = 2.0) -> bool:
    """True when a broker answers a metadata request within ``timeout`` seconds."""
    try:
        md = AdminClient(client_config(bootstrap, log_level=0)).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(md.brokers)
