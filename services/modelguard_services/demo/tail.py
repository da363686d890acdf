"""Tailing the loop's output topics (decisions, drift signals, metric windows).

Not ``read_to_end``: the tail keeps reading while the loop runs (records produced after
it started are the point), where ``read_to_end`` stops at the high watermarks it saw
first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from modelguard.adapters.kafka import KafkaConnection, client_config
from modelguard.contracts.codec import decode_event
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.errors import DependencyError

Tailed = RoutingDecision | DriftSignal | MetricWindowClosed


class TopicTail:
    """Reads the loop's output topics (decisions, drift signals, metric windows) from
    their beginning; yields each event with its Kafka timestamp."""

    def __init__(self, connection: KafkaConnection, topics: dict[str, type[Tailed]]) -> None:
        self._models = topics
        self._c = Consumer(
            client_config(
                connection,
                **{
                    "group.id": f"{min(topics)}-demo-tail-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                },
            )
        )
        meta = self._c.list_topics(timeout=10)
        missing = sorted(t for t in topics if t not in meta.topics)
        if missing:
            self._c.close()
            raise DependencyError(f"topics {missing} do not exist")
        self._c.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in topics
                for p in meta.topics[t].partitions
            ]
        )

    def poll(self, timeout: float) -> Iterator[tuple[Tailed, datetime]]:
        for msg in self._c.consume(500, timeout=timeout):
            topic = msg.topic()
            if msg.error() is not None or topic is None:
                continue
            _kind, ms = msg.timestamp()
            at = datetime.fromtimestamp(ms / 1000.0, UTC)
            yield decode_event(self._models[topic], msg.value() or b""), at

    def close(self) -> None:
        self._c.close()
