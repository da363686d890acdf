"""Outputs whose delivery failed are sent again before a checkpoint moves past them.

Before: ``PartitionedRuntime.checkpoint()`` flushed the producer and, ``flush()`` being
0 once a message had *failed* (``_MSG_TIMED_OUT`` after a broker outage longer than
``message.timeout.ms``), saved the offsets past a metric window that never reached its
topic: the window was lost for good and the controller never saw it
(``/tmp/review/repro_checkpoint_after_failed_delivery.py`` showed it on a closed port).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

from modelguard.adapters.delivery import RetriedOutputs


class FakeProducer:
    """Delivers at ``flush``; the first ``fail`` messages fail as after an outage."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.pending: list[tuple[str, bytes, Callable[[Any, Any], None]]] = []
        self.delivered: list[tuple[str, bytes]] = []
        self.full_once = True

    def produce(self, topic: str, **kw: Any) -> None:
        if self.full_once:  # a full local queue waits, it does not drop
            self.full_once = False
            raise BufferError("queue full")
        self.pending.append((topic, kw["value"], kw["on_delivery"]))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        pending, self.pending = self.pending, []
        for topic, value, report in pending:
            if self.fail > 0:
                self.fail -= 1
                report(KafkaError(KafkaError._MSG_TIMED_OUT), None)
            else:
                self.delivered.append((topic, value))
                report(None, None)
        return 0  # like librdkafka: 0 once every message is done, delivered or failed


def test_a_failed_output_is_sent_again_and_blocks_the_checkpoint_until_delivered() -> None:
    producer = FakeProducer(fail=3)
    outputs = RetriedOutputs(producer)  # type: ignore[arg-type]
    outputs.produce("windows", b"w1", key=b"m")
    outputs.produce("windows", b"w2", key=b"m", headers=[("event_type", b"x")])
    assert producer.flush(1) == 0  # what the checkpoint checked before: "all done"
    assert producer.delivered == [] and len(outputs.failed) == 2
    assert outputs.redeliver() is False  # w1 failed once more: no checkpoint yet
    assert producer.delivered == [("windows", b"w2")] and len(outputs.failed) == 1
    assert outputs.redeliver() is True
    assert sorted(producer.delivered) == [("windows", b"w1"), ("windows", b"w2")]
    assert outputs.failed == [] and outputs.failures == 3


def test_nothing_failed_nothing_resent() -> None:
    producer = FakeProducer(fail=0)
    outputs = RetriedOutputs(producer)  # type: ignore[arg-type]
    outputs.produce("windows", b"w1")
    assert outputs.redeliver() is True
    assert producer.delivered == [("windows", b"w1")]


def test_a_real_producer_reports_a_timed_out_output_as_failed() -> None:
    """librdkafka itself, on a closed port: flush() is 0, the output is failed."""
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300})
    outputs = RetriedOutputs(producer, flush_timeout=10)
    outputs.produce("windows", b"w1")
    assert producer.flush(10) == 0
    assert [(t, v) for t, _k, v, _h in outputs.failed] == [("windows", b"w1")]
    assert outputs.redeliver() is False
    assert len(outputs.failed) == 1  # kept for the next checkpoint
