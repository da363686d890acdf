"""Outputs whose delivery failed are sent again before a checkpoint moves past them.

``Producer.flush()`` returns 0 once every queued message is *done*, delivered or failed
(a broker unreachable for longer than ``message.timeout.ms``, a topic that is missing or
not writable): a checkpoint that only flushes would save offsets past outputs that never
reached the topic, and they would be lost for good. :class:`RetriedOutputs` remembers
each output until its delivery report; :meth:`RetriedOutputs.redeliver` (called by a
processor's ``save`` before it stores anything) produces the failed ones again and says
whether all of them are now delivered, so the checkpoint is refused until they are
(the runtime retries it at the next interval).
"""

from __future__ import annotations

from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer

log = structlog.get_logger("modelguard.delivery")
Headers = list[tuple[str, bytes]]


class RetriedOutputs:
    """Produces outputs with a delivery report; keeps the failed ones for a retry."""

    def __init__(self, producer: Producer, *, flush_timeout: float = 30.0) -> None:
        self._producer = producer
        self._flush_timeout = flush_timeout
        #: outputs whose delivery failed: (topic, key, value, headers)
        self.failed: list[tuple[str, bytes | None, bytes, Headers | None]] = []
        self.failures = 0

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        """Queue an output (waiting while the local queue is full)."""

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self.failures += 1
                self.failed.append((topic, key, value, headers))
                log.warning("output_undelivered", topic=topic, error=str(err))

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": report}
        if headers is not None:
            kwargs["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.1)

    def redeliver(self) -> bool:
        """Produce the failed outputs again and wait for them: True when none is left
        failed or pending (then a checkpoint may move past them)."""
        if self._producer.flush(self._flush_timeout) != 0:
            return False
        if not self.failed:
            return True
        retry, self.failed = self.failed, []
        log.info("outputs_redelivering", outputs=len(retry))
        for topic, key, value, headers in retry:
            self.produce(topic, value, key, headers)
        return self._producer.flush(self._flush_timeout) == 0 and not self.failed
