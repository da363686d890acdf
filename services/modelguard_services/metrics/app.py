"""The metrics loop: consume, fold into per-partition state, publish, checkpoint.

Runtime (ADR 0007): a confluent-kafka consumer in group ``metrics_group_id`` with the
range assignor, so partition ``p`` of ``predictions`` and of ``labels`` (co-partitioned
by prediction id, ADR 0002) go to the same worker and share one
:class:`~modelguard.core.metrics.PartitionState`. Every
``metrics_checkpoint_interval_s`` (stretched so that checkpoints take at most
``metrics_checkpoint_max_share`` of the time, as a snapshot's cost grows with the
state) the loop flushes its outputs, then writes each changed partition's state
*together with its source offsets* to a compacted changelog topic.
On (re)assignment a partition's state is restored from the changelog and consumption
resumes at the offsets stored with it, so a crash (kill -9) replays only events that
are not in the state: nothing is lost and nothing is counted twice. Windows closed
between the last checkpoint and a crash are published again with the same
``event_id`` and content.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.ingest import IngestMetrics, ValidatingConsumer
from modelguard.adapters.kafka import ensure_topics, make_consumer, make_producer
from modelguard.contracts import LabelObserved, PredictionLogged, encode_event
from modelguard.core.metrics import MetricsProcessor, PartitionState, to_event
from modelguard.core.metrics.processor import ClosedWindow
from modelguard_services.metrics.exposition import MetricsCollector, build_view
from modelguard_services.metrics.settings import MetricsSettings

SERVICE = "metrics"
MAX_STATE_BYTES = 64 * 1024 * 1024
#: Records per poll: few enough that a batch of decoded events stays in the CPU cache
#: (measured: decode ~20% cheaper than with 2000).
BATCH = 250
log = structlog.get_logger("modelguard.metrics")


#: Young-generation threshold of the cyclic garbage collector in a metrics process.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Process-wide collector settings for a metrics worker (called by ``__main__``).

    A batch of decoded events (2000 pydantic models) outlives many collections at the
    default threshold (700 allocations), so each batch was traversed again and again:
    measured, that doubled the cost of decoding. Objects alive now (modules, settings)
    are frozen out of the collector's reach and the young generation is collected every
    ``GC_GEN0_THRESHOLD`` allocations; the processor creates no reference cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 50)


def changelog_topic(settings: MetricsSettings) -> str:
    return f"{settings.topic_prefix}.metrics-changelog.v1"


def encode_state(state: PartitionState) -> bytes:
    """JSON (NaN rejected), zlib-compressed: the changelog record of one partition."""
    raw = json.dumps(state.to_json(), separators=(",", ":"), allow_nan=False).encode()
    return zlib.compress(raw, 1)


def decode_state(raw: bytes) -> PartitionState:
    return PartitionState.from_json(json.loads(zlib.decompress(raw)))


def read_changelog(
    bootstrap: str, topic: str, group_id: str, timeout: float = 30.0
) -> dict[int, bytes]:
    """The latest state record per partition of ``group_id`` (compacted topic, read to
    its end)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{group_id}-restore-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": MAX_STATE_BYTES,
            "receive.message.max.bytes": MAX_STATE_BYTES + 1024 * 1024,
        }
    )
    prefix = f"{group_id}:".encode()
    out: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + timeout
        while True:  # a topic created a moment ago may not be in the metadata yet
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if high <= 0:
            return out
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        position = -1
        while position < high - 1 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is not None:
                    continue
                position = msg.offset() or 0
                key = msg.key() or b""
                if key.startswith(prefix):
                    partition = int(key[len(prefix) :])
                    value = msg.value()
                    if value:
                        out[partition] = value
                    else:
                        out.pop(partition, None)
        if position < high - 1:
            raise RuntimeError(f"could not read changelog {topic} to its end ({position}/{high})")
    finally:
        consumer.close()
    return out


class MetricsService:
    """Consume predictions and labels until ``stop``; see the module docstring."""

    def __init__(
        self,
        settings: MetricsSettings,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.group_id = settings.metrics_group_id
        self.processor = MetricsProcessor(settings.processor_config())
        self._clock = clock
        bootstrap = settings.kafka_bootstrap_servers
        self.changelog = changelog_topic(settings)
        ensure_topics(
            bootstrap,
            [self.changelog],
            partitions=1,
            config={"cleanup.policy": "compact", "max.message.bytes": str(MAX_STATE_BYTES)},
        )
        self._producer = make_producer(bootstrap, message_max_bytes=MAX_STATE_BYTES + 1024 * 1024)
        self._snapshots = read_changelog(bootstrap, self.changelog, self.group_id)
        consumer = make_consumer(
            bootstrap,
            self.group_id,
            enable_auto_commit=False,
            partition_assignment_strategy="range",
        )
        self._consumer = consumer
        self._ingest: ValidatingConsumer[PredictionLogged | LabelObserved] = ValidatingConsumer(
            consumer,
            {self.topics.predictions: PredictionLogged, self.topics.labels: LabelObserved},
            DeadLetterPublisher(self._producer, self.topics.dead_letter, stage=SERVICE),
            IngestMetrics(registry, SERVICE),
            clock,
        )
        consumer.subscribe(
            [self.topics.predictions, self.topics.labels],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        self.states: dict[int, PartitionState] = {}
        self._dirty: set[int] = set()
        self.collector = MetricsCollector()
        registry.register(self.collector)
        self.processed = 0
        self.windows_published = 0
        self._assignments = 0

    # -- partitions ------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            p = tp.partition
            state = self.states.get(p)
            if state is None:
                raw = self._snapshots.pop(p, None)
                state = decode_state(raw) if raw is not None else PartitionState(partition=p)
                self.states[p] = state
                log.info("partition_restored" if raw else "partition_new", partition=p)
            tp.offset = state.offsets.get(f"{tp.topic}:{p}", OFFSET_BEGINNING)
        consumer.assign(partitions)
        self._assignments += 1

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self.checkpoint(only=revoked & set(self.states))
        for p in revoked:
            self.states.pop(p, None)
        self._refresh()

    # -- loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Process until ``stop`` (or ``idle_exit_seconds`` without messages once it owns
        partitions); returns the number of valid events handled."""
        last_seen = last_checkpoint = last_refresh = time.monotonic()
        seen_assignments = self._assignments
        cfg = self.settings
        checkpoint_every = cfg.metrics_checkpoint_interval_s
        refresh_every = cfg.metrics_refresh_interval_s
        try:
            while not stop.is_set():
                batch = self._ingest.poll(max_messages=BATCH, timeout=0.05)
                self._handle(batch)
                self._producer.poll(0)
                now = time.monotonic()
                if batch or self._assignments != seen_assignments:
                    last_seen, seen_assignments = now, self._assignments
                elif (
                    idle_exit_seconds is not None
                    and self._assignments
                    and now - last_seen > idle_exit_seconds
                ):
                    break
                if now - last_refresh >= refresh_every:
                    self._refresh()
                    last_refresh = time.monotonic()
                    # the gauges' last-N aggregates are built when read: under load,
                    # refresh less often (at most metrics_refresh_max_share of the loop,
                    # never less often than metrics_refresh_max_interval_s)
                    refresh_every = min(
                        cfg.metrics_refresh_max_interval_s,
                        max(
                            cfg.metrics_refresh_interval_s,
                            (last_refresh - now) / cfg.metrics_refresh_max_share,
                        ),
                    )
                if now - last_checkpoint >= checkpoint_every:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
                    # a snapshot's cost grows with the state: stretch the interval so
                    # checkpoints take at most metrics_checkpoint_max_share of the loop
                    checkpoint_every = max(
                        cfg.metrics_checkpoint_interval_s,
                        (last_checkpoint - now) / cfg.metrics_checkpoint_max_share,
                    )
            self.checkpoint()
        finally:
            self._producer.flush(10)
            self._ingest.close()
        log.info("metrics_stopped", processed=self.processed, windows=self.windows_published)
        return self.processed

    def _handle(self, batch: list[Any]) -> None:
        """Fold a batch into the partition states; offsets are stored once per source
        partition and batch (offsets within a partition only grow)."""
        handle = self.processor.handle
        states = self.states
        floors: dict[tuple[str, int], int] = {}  # (topic, partition) -> first new offset
        last: dict[tuple[str, int], int] = {}
        try:
            for r in batch:
                p = r.partition
                source = (r.topic, p)
                floor = floors.get(source)
                if floor is None:
                    state = states.get(p)
                    if state is None:
                        state = states[p] = PartitionState(partition=p)
                    floor = floors[source] = state.offsets.get(f"{r.topic}:{p}", 0)
                if r.offset < floor:
                    continue  # already folded into the restored state
                _, closed = handle(r.event, states[p])  # the state is changed in place
                last[source] = r.offset
                if closed:
                    self._publish(closed)
        finally:  # even if an event raised: the state holds the events before it
            for (topic, p), offset in last.items():
                states[p].offsets[f"{topic}:{p}"] = offset + 1
                self._dirty.add(p)
        self.processed += len(batch)

    def _publish(self, closed: list[ClosedWindow]) -> None:
        now = self._clock()
        for w in closed:
            event = to_event(w, now)
            value = encode_event(event)
            while True:
                try:
                    self._producer.produce(
                        self.topics.metric_windows,
                        key=w.model.encode(),
                        value=value,
                        headers=[("event_type", event.schema_name.encode())],
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self.windows_published += 1

    def _refresh(self) -> None:
        self.collector.view = build_view(self.processor, list(self.states.values()))

    def checkpoint(self, only: set[int] | None = None) -> None:
        """Make outputs durable, then store each changed partition's state + offsets."""
        dirty = self._dirty if only is None else self._dirty & only
        if not dirty:
            return
        if self._producer.flush(30) != 0:
            log.warning("checkpoint_skipped", reason="outputs not delivered")
            return
        for p in sorted(dirty):
            state = self.states.get(p)
            if state is None:
                continue
            self._producer.produce(
                self.changelog, key=f"{self.group_id}:{p}".encode(), value=encode_state(state)
            )
        if self._producer.flush(30) != 0:
            log.warning("checkpoint_incomplete", partitions=sorted(dirty))
            return
        offsets = [
            TopicPartition(key.rsplit(":", 1)[0], p, off)
            for p in sorted(dirty)
            if p in self.states
            for key, off in self.states[p].offsets.items()
        ]
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        self._dirty -= dirty
