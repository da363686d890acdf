"""read_to_end: every record up to the high watermarks at the start, or the last N."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from modelguard.adapters.topic_reader import read_to_end
from modelguard.contracts import Topics
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


def test_reads_all_partitions_to_their_end_or_only_their_tail(
    servers: Servers, topics: Topics
) -> None:
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    for p in range(3):
        for i in range(5 + p):
            producer.produce(topics.routing_decisions, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(10) == 0
    everything = [m.value() for m in read_to_end(servers.kafka_bootstrap, topics.routing_decisions)]
    assert sorted(everything) == sorted(f"{p}-{i}".encode() for p in range(3) for i in range(5 + p))
    tail = [
        m.value() for m in read_to_end(servers.kafka_bootstrap, topics.routing_decisions, tail=2)
    ]
    assert sorted(tail) == sorted(f"{p}-{i}".encode() for p in range(3) for i in (3 + p, 4 + p))
    one = [m.value() for m in read_to_end(servers.kafka_bootstrap, topics.routing_decisions, [1])]
    assert one == [f"1-{i}".encode() for i in range(6)]
    assert list(read_to_end(servers.kafka_bootstrap, topics.exposures)) == []  # empty topic
