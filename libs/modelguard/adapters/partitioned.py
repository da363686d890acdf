"""The partitioned-processor runtime every stateful stream service runs on (ADR 0010).

A processor (metrics, drift, experiments) supplies only what is its own: how to
``restore`` the state of some partitions (returning the offsets saved with it), how to
``save`` its state together with the offsets the runtime hands it, and how to
``handle`` an event (or a batch of them). :class:`PartitionedRuntime` owns everything
else, once:

- **subscription and assignment**: one consumer in the group, range assignor, so
  partition ``p`` of co-partitioned topics goes to one worker (ADR 0002);
- **restore on every assignment**: each assignment (start, rebalance, a peer joining or
  leaving, a session lost during an outage) calls ``restore`` and positions the consumer
  at the offsets saved *with* the state, so state and position never disagree and no
  partition is replayed from offset 0 into a state that already holds it; a revocation
  checkpoints first, a loss (``on_lost``) does not;
- **offset tracking with one key format**: ``"<topic>:<partition>"`` -> next offset to
  read (:func:`offset_key`), following the consumer's position after each batch (every
  message before it was handled or dead-lettered);
- **checkpoint cadence with a cap** (:class:`~modelguard.adapters.cadence.CheckpointCadence`):
  flush the outputs, ``save(offsets)``, commit the same offsets to the group (for lag
  monitoring only); the interval stretches with the checkpoint's CPU cost (time blocked
  in a flush does not count) and never exceeds ``max_factor`` times the base;
- **a per-message error boundary**: an event whose handling raises is dead-lettered
  with stage ``process``, the exception type and message, counted, logged, and the
  consumer moves on. A processor that handles whole batches (``handle_batch``, for
  vectorised cores) cannot say which event failed, nor undo the events before it: the
  runtime restores the state of its partitions from the last checkpoint, rewinds the
  consumer to the offsets saved with it and replays event by event up to the end of the
  failed batch (outputs since the checkpoint are sent again, as after a crash).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from prometheus_client import CollectorRegistry

from modelguard.adapters.cadence import CheckpointCadence
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.ingest import IngestMetrics, Received, ValidatingConsumer
from modelguard.adapters.kafka import KafkaConnection, make_consumer, make_producer
from modelguard.adapters.topic_reader import TopicReadError
from modelguard.contracts.base import Event
from modelguard.contracts.codec import encode_event
from modelguard.contracts.dead_letter import PROCESS_ERROR, PROCESS_STAGE, DeadLetter
from modelguard.contracts.limits import Limits

E = TypeVar("E")  # the decoded form of an event (see adapters.ingest)
log = structlog.get_logger("modelguard.runtime")
#: Failures of a read that are worth retrying while the brokers come back.
KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (KafkaException, TopicReadError)


def offset_key(topic: str, partition: int) -> str:
    """The one key of a source partition's offset in every checkpoint: ``topic:partition``.

    >>> offset_key("mg.predictions.v1", 2), parse_offset_key("mg.predictions.v1:2")
    ('mg.predictions.v1:2', ('mg.predictions.v1', 2))
    """
    return f"{topic}:{partition}"


def parse_offset_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)


def offsets_of(offsets: Mapping[str, int], partition: int) -> dict[str, int]:
    """The entries of ``offsets`` that belong to ``partition`` (of any topic)."""
    suffix = f":{partition}"
    return {k: v for k, v in offsets.items() if k.endswith(suffix)}


class PartitionedProcessor(Protocol[E]):
    """What a processor supplies to :class:`PartitionedRuntime`."""

    def restore(self, partitions: Sequence[int]) -> Mapping[str, int]:
        """Load the saved state of ``partitions`` (replacing any in memory) and return the
        offsets saved with it (:func:`offset_key` keys). A partition whose state starts
        empty maps to ``OFFSET_BEGINNING`` (read it all) or is left out (resume at the
        group's committed offset)."""
        ...

    def release(self, partitions: Sequence[int]) -> None:
        """Forget the state of ``partitions`` (revoked or lost)."""
        ...

    def handle(self, received: Received[E]) -> None:
        """Fold one event into the state; raising dead-letters it (stage ``process``)."""
        ...

    def save(self, offsets: Mapping[str, int]) -> bool:
        """Durably store the state of the assigned partitions with ``offsets``; False when
        it could not (the runtime retries at the next checkpoint)."""
        ...

    def tick(self) -> None:
        """Periodic work between batches (refresh gauges, analyses, ...)."""
        ...


@runtime_checkable
class BatchHandler(Protocol):
    """Optional: a processor that folds a whole batch at once (see the module doc)."""

    def handle_batch(self, batch: list[Received[Any]]) -> None: ...


@dataclass(frozen=True)
class RuntimeOptions(Generic[E]):
    """How a service's runtime consumes, checkpoints and dead-letters."""

    service: str
    group_id: str
    models: Mapping[str, type[Event]]
    dead_letter_topic: str
    checkpoint_interval: float = 1.0
    checkpoint_max_share: float = 0.05
    checkpoint_max_factor: float = 10.0
    batch: int = 500
    poll_timeout: float = 0.2
    consumer_settings: Mapping[str, Any] = field(default_factory=dict)
    producer_settings: Mapping[str, Any] = field(default_factory=dict)
    #: per topic, a decoder with the contract's acceptance returning another form of
    #: the event (default: ``decode_event`` as the topic's model)
    decoders: Mapping[str, Callable[[bytes | None, Limits], E]] | None = None


class PartitionedRuntime(Generic[E]):
    """Runs a :class:`PartitionedProcessor` (see the module docstring).

    Build the runtime, then the processor (which may use :attr:`producer` and
    :attr:`consumer`), then :meth:`attach` it and :meth:`run`.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        registry: CollectorRegistry,
        options: RuntimeOptions[E],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.options = options
        self.clock = clock
        #: reports the brokers (via the consumer) and retries restores that need them
        self.kafka = DependencyGuard("kafka", registry, transient=KAFKA_TRANSIENT)
        self.producer: Producer = make_producer(connection, **options.producer_settings)
        self.consumer: Consumer = make_consumer(
            connection,
            options.group_id,
            enable_auto_commit=False,
            partition_assignment_strategy="range",
            **options.consumer_settings,
        )
        self.ingest: ValidatingConsumer[E] = ValidatingConsumer(
            self.consumer,
            cast("Mapping[str, type[E]]", options.models),  # E: see ``decoders``
            DeadLetterPublisher(self.producer, options.dead_letter_topic, stage=options.service),
            IngestMetrics(registry, options.service),
            clock,
            kafka=self.kafka,
            subscribe=False,
            decoders=options.decoders,
        )
        self.cadence = CheckpointCadence(
            options.checkpoint_interval,
            options.checkpoint_max_share,
            options.checkpoint_max_factor,
        )
        self._processor: PartitionedProcessor[E] | None = None
        self._batch_mode = False
        self.assigned: list[TopicPartition] = []
        #: next offset to read per offset key, for the assigned partitions
        self.offsets: dict[str, int] = {}
        self._saved: dict[str, int] = {}
        self._start: dict[str, int] = {}
        self._isolating: dict[str, int] | None = None
        self.assignments = 0
        self.restores = 0
        self.processed = 0
        self.process_errors = 0
        self.checkpoints = 0

    # -- wiring ----------------------------------------------------------------------
    def attach(self, processor: PartitionedProcessor[E]) -> None:
        self._processor = processor
        self._batch_mode = isinstance(processor, BatchHandler)
        self.consumer.subscribe(
            list(self.options.models),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    @property
    def processor(self) -> PartitionedProcessor[E]:
        if self._processor is None:
            raise RuntimeError("no processor attached")
        return self._processor

    @property
    def partitions(self) -> list[int]:
        return sorted({tp.partition for tp in self.assigned})

    # -- assignment ------------------------------------------------------------------
    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Restore the processor's state and set each ``tp.offset`` to resume from."""
        saved = self.processor.restore(sorted({tp.partition for tp in partitions}))
        self.restores += 1
        missing = [
            TopicPartition(tp.topic, tp.partition)
            for tp in partitions
            if offset_key(tp.topic, tp.partition) not in saved
        ]
        committed: dict[str, int] = {}
        if missing:
            try:
                for tp in self.consumer.committed(missing, timeout=10):
                    committed[offset_key(tp.topic, tp.partition)] = tp.offset
            except KafkaException as exc:
                log.warning("committed_offsets_unknown", error=str(exc))
        self.offsets, self._start = {}, {}
        for tp in partitions:
            key = offset_key(tp.topic, tp.partition)
            offset = saved.get(key, committed.get(key, OFFSET_INVALID))
            tp.offset = offset
            self._start[key] = offset
            if offset >= 0:
                self.offsets[key] = offset
        self._saved = dict(self.offsets)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._restore(partitions)
        self._isolating = None
        consumer.assign(partitions)
        self.assigned = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self.assignments += 1
        log.info(
            "partitions_assigned",
            service=self.options.service,
            partitions=self.partitions,
            offsets=self.offsets,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._advance()
        self.checkpoint()
        self._drop(consumer, partitions, "partitions_revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # another worker may own them already: its restore is authoritative, ours is stale
        self._drop(consumer, partitions, "partitions_lost")

    def _drop(self, consumer: Consumer, partitions: list[TopicPartition], event: str) -> None:
        self.processor.release(sorted({tp.partition for tp in partitions}))
        gone = {offset_key(tp.topic, tp.partition) for tp in partitions}
        self.assigned = [
            tp for tp in self.assigned if offset_key(tp.topic, tp.partition) not in gone
        ]
        for key in gone:
            self.offsets.pop(key, None)
            self._saved.pop(key, None)
        consumer.unassign()
        log.info(event, service=self.options.service, partitions=sorted(gone))

    # -- offsets ---------------------------------------------------------------------
    def _advance(self) -> None:
        """Offsets follow the consumer's position: every message before it is done."""
        if not self.assigned:
            return
        offsets = self.offsets
        for tp in self.consumer.position(self.assigned):
            if tp.offset >= 0:
                key = offset_key(tp.topic, tp.partition)
                if tp.offset > offsets.get(key, -1):
                    offsets[key] = tp.offset

    # -- events ----------------------------------------------------------------------
    def _failed(self, received: Received[E], error: Exception) -> None:
        dlq = self.ingest.dead_letters
        now = self.clock()
        if received.message is not None:
            letter = dlq.publish_failure(received.message, error, now)
        else:  # built by hand (tests): dead-letter the event's JSON
            event = received.event
            letter = dlq.publish_raw(
                received.key,
                encode_event(event) if isinstance(event, Event) else repr(event).encode(),
                DeadLetter(
                    reason=f"{type(error).__name__}: {error}"[:4096],
                    error_kind=PROCESS_ERROR,
                    stage=PROCESS_STAGE,
                    source_topic=received.topic,
                    source_partition=received.partition,
                    source_offset=received.offset,
                    failed_at=now,
                    service=self.options.service,
                    exception_type=type(error).__qualname__,
                ),
            )
        metrics = self.ingest.metrics
        metrics.dead_letters.labels(metrics.service, received.topic, PROCESS_ERROR).inc()
        self.process_errors += 1
        log.error(
            "process_failed",
            service=self.options.service,
            topic=received.topic,
            partition=received.partition,
            offset=received.offset,
            exception_type=letter.exception_type,
            error=str(error),
            exc_info=error,
        )

    def _handle_each(self, batch: list[Received[E]]) -> None:
        handle = self.processor.handle
        for r in batch:
            try:
                handle(r)
            except Exception as exc:  # the error boundary: one event never stops a service
                self._failed(r, exc)

    def _handle_batches(self, batch: list[Received[E]]) -> None:
        processor = cast(BatchHandler, self.processor)
        if self._isolating is None:
            try:
                processor.handle_batch(batch)
                return
            except Exception as exc:
                ends: dict[str, int] = {}
                for r in batch:
                    key = offset_key(r.topic, r.partition)
                    ends[key] = max(ends.get(key, 0), r.offset + 1)
                log.warning(
                    "batch_failed_replaying",
                    service=self.options.service,
                    error=f"{type(exc).__name__}: {exc}",
                    until=ends,
                )
                self._rewind()
                self._isolating = ends
                return
        for r in batch:
            try:
                processor.handle_batch([r])
            except Exception as exc:
                self._failed(r, exc)

    def _rewind(self) -> None:
        """Restore the last checkpoint's state and seek back to its offsets."""
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in self.assigned]
        start = dict(self._start)
        self._restore(partitions)
        for tp in partitions:
            key = offset_key(tp.topic, tp.partition)
            offset = tp.offset if tp.offset != OFFSET_INVALID else start.get(key, OFFSET_INVALID)
            if offset == OFFSET_INVALID:  # nothing saved or committed: read from the start
                offset = OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _isolation_done(self) -> None:
        ends = self._isolating
        if ends is not None and all(self.offsets.get(k, -1) >= v for k, v in ends.items()):
            self._isolating = None
            log.info("batch_replayed", service=self.options.service)

    def handle(self, batch: list[Received[E]]) -> None:
        if self._batch_mode:
            self._handle_batches(batch)
        else:
            self._handle_each(batch)
        self.processed += len(batch)

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint(self) -> bool:
        """Deliver the outputs, then save state + offsets (nothing when unchanged)."""
        if not self.assigned or self.offsets == self._saved:
            return True
        cpu = time.thread_time()
        if self.producer.flush(30) != 0:
            log.warning("checkpoint_skipped", reason="outputs not delivered")
            return False
        offsets = dict(self.offsets)
        if not self.processor.save(offsets):
            log.warning("checkpoint_incomplete", service=self.options.service)
            return False
        self._saved = offsets
        self.checkpoints += 1
        commit = [TopicPartition(*parse_offset_key(k), v) for k, v in offsets.items() if v >= 0]
        if commit:
            try:
                self.consumer.commit(offsets=commit, asynchronous=True)
            except KafkaException as exc:  # lag monitoring only: the state has the offsets
                log.warning("commit_failed", error=str(exc))
        self.cadence.record(time.thread_time() - cpu)
        return True

    # -- loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Process until ``stop`` (or ``idle_exit_seconds`` without messages once it owns
        partitions); returns the number of valid events handled."""
        processor = self.processor
        opts = self.options
        self.kafka.stop = stop
        last_seen = last_checkpoint = time.monotonic()
        seen_assignments = self.assignments
        try:
            while not stop.is_set():
                processor.tick()
                batch = self.ingest.poll(max_messages=opts.batch, timeout=opts.poll_timeout)
                if batch:
                    self.handle(batch)
                self._advance()
                if self._isolating is not None:
                    self._isolation_done()
                self.producer.poll(0)
                now = time.monotonic()
                if batch or self.assignments != seen_assignments:
                    last_seen, seen_assignments = now, self.assignments
                elif (
                    idle_exit_seconds is not None
                    and self.assigned
                    and now - last_seen > idle_exit_seconds
                ):
                    break
                if self.cadence.due(now - last_checkpoint):
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
            self.checkpoint()
        finally:
            self.producer.flush(10)
            self.ingest.close()
        log.info(
            "runtime_stopped",
            service=opts.service,
            processed=self.processed,
            process_errors=self.process_errors,
        )
        return self.processed
