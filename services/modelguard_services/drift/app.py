"""The drift service loop, separated from process start-up so tests run it in a thread.

State is recoverable (ADR 0008): every ``checkpoint_interval`` seconds, once its outputs
are delivered, the worker saves its whole drift state (JSON, see
``core.drift.checkpoint``) *with the offsets it has consumed* to Redis, under its group
and the set of partitions it reads. When it is assigned the same set again (a restart,
a kill -9, an eager rebalance that gives it back its partitions) it restores that state
and resumes at those offsets, so state and position never disagree and the open
windows, sequential detectors and warm-ups continue as if nothing had happened. A set
with no checkpoint (the group's membership changed) starts from empty state at the
group's committed offsets: at most one window per model version is lost, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import structlog
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore
from modelguard.adapters.ingest import IngestMetrics, Received, ValidatingConsumer
from modelguard.adapters.kafka import make_consumer, make_producer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.base import Event
from modelguard.contracts.codec import encode_event
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift.checkpoint import CheckpointError, dump_state, load_state
from modelguard.core.drift.processor import (
    DriftConfig,
    DriftProcessor,
    DriftState,
    Output,
    ReferenceLearned,
    WarmupDropped,
    WindowReport,
)
from modelguard.core.drift.reference import ReferenceDataError, ReferenceProfile
from modelguard.core.drift.report import render_html, render_text, summary
from modelguard_services.drift.metrics import DriftMetrics

SERVICE = "drift"
log = structlog.get_logger("modelguard.drift")


class DriftService:
    """Consume predictions + labels -> drift processor -> signals, metrics, reports."""

    def __init__(
        self,
        settings: CommonSettings,
        registry: CollectorRegistry,
        *,
        config: DriftConfig | None = None,
        group_id: str = "modelguard-drift",
        clock: Callable[[], datetime] = utc_now,
        report_dir: Path | None = None,
        reference_refresh_seconds: float = 5.0,
        worker: str = "drift-0",
        checkpoint_interval: float = 2.0,
    ) -> None:
        topics = settings.topics
        self._topics = topics
        self._producer = make_producer(settings.kafka_connection())
        self._raw_consumer = make_consumer(settings.kafka_connection(), group_id)
        self._consumer: ValidatingConsumer[Event] = ValidatingConsumer(
            self._raw_consumer,
            {topics.predictions: PredictionLogged, topics.labels: LabelObserved},
            DeadLetterPublisher(self._producer, topics.dead_letter, stage=SERVICE),
            IngestMetrics(registry, SERVICE),
            clock,
        )
        self._raw_consumer.subscribe(
            [topics.predictions, topics.labels],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        redis_client = make_redis(settings.redis_url)
        self._store = ReferenceStore(redis_client, settings.redis_prefix)
        self._checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)
        self._group = group_id
        self._checkpoint_interval = checkpoint_interval
        self._processor = DriftProcessor(config, worker=worker)
        self._state = DriftState()
        #: next offset per "topic:partition" folded into ``_state``
        self._offsets: dict[str, int] = {}
        self._assignment = ""
        self._assigned_at = 0.0
        self._dirty = False
        self.restored = False
        self._metrics = DriftMetrics(registry)
        self._report_dir = report_dir
        self._refresh = reference_refresh_seconds
        self._known: dict[tuple[str, str], str | None] = {}
        self._last_refresh = time.monotonic()
        self.processed = 0
        self.signals_sent = 0
        self.last_reports: dict[tuple[str, str], WindowReport] = {}

    # ------------------------------------------------------------ references
    def _install(self, model: str, version: str) -> None:
        try:
            ref = self._store.resolve(model, version)
        except ReferenceDataError as exc:
            log.error("reference_unreadable", model=model, version=version, error=str(exc))
            ref = None
        self._known[(model, version)] = ref.reference_id if ref else None
        if ref is not None:
            self._processor.set_reference(self._state, ref)
            self._metrics.on_reference(model, version, ref.reference_id)
            log.info(
                "reference_loaded", model=model, version=version, reference_id=ref.reference_id
            )

    def _refresh_references(self) -> None:
        if time.monotonic() - self._last_refresh < self._refresh:
            return
        self._last_refresh = time.monotonic()
        for (model, version), ref_id in list(self._known.items()):
            current = self._store.current_id(model, version) or self._store.current_id(model, None)
            if current is not None and current != ref_id:
                self._install(model, version)

    def _learned(self, ref: ReferenceProfile) -> None:
        published = self._store.publish(ref, only_if_absent=True)
        version = ref.version or ""
        if not published.installed:
            self._install(ref.model, version)  # another worker won: use theirs
        else:
            self._known[(ref.model, version)] = ref.reference_id
            self._metrics.on_reference(ref.model, version, ref.reference_id)
        log.info(
            "reference_learned",
            model=ref.model,
            version=version,
            reference_id=published.reference_id,
            installed=published.installed,
        )

    # ------------------------------------------------------------ loop
    # ------------------------------------------------------------ checkpoints
    def _assignment_key(self, partitions: list[TopicPartition]) -> str:
        short = {self._topics.predictions: "p", self._topics.labels: "l"}
        parts: dict[str, list[int]] = {}
        for tp in partitions:
            parts.setdefault(short.get(tp.topic, tp.topic), []).append(tp.partition)
        return "|".join(f"{t}{','.join(map(str, sorted(ps)))}" for t, ps in sorted(parts.items()))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment = self._assignment_key(partitions)
        self._assigned_at = time.monotonic()
        self._state, self._offsets, self._known = DriftState(), {}, {}
        self.restored = False
        try:
            data = self._checkpoints.load(self._group, self._assignment)
            if data is not None:
                self._state = load_state(self._processor, data["state"])
                self._offsets = {str(k): int(v) for k, v in data["offsets"].items()}
                self.restored = True
        except (CheckpointError, ValueError, KeyError, TypeError) as exc:
            log.error("checkpoint_unusable", assignment=self._assignment, error=str(exc))
            self._state, self._offsets = DriftState(), {}
        # before the first event of these partitions: the warm-up must wait for all
        self._processor.assign(
            self._state, [tp.partition for tp in partitions if tp.topic == self._topics.predictions]
        )
        for tp in partitions:
            saved = self._offsets.get(f"{tp.topic}:{tp.partition}")
            if saved is not None:
                tp.offset = saved
        consumer.assign(partitions)
        log.info("partitions_assigned", assignment=self._assignment, restored=self.restored)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.checkpoint()
        self._state, self._offsets, self._assignment = DriftState(), {}, ""
        self._processor.assign(self._state, [])
        consumer.unassign()

    def _advance_to_positions(self) -> None:
        """Saved offsets follow the consumer's position: every message before it was
        handled or dead-lettered."""
        assigned = self._raw_consumer.assignment()
        if not assigned:
            return
        for tp in self._raw_consumer.position(assigned):
            key = f"{tp.topic}:{tp.partition}"
            if tp.offset >= 0 and tp.offset != self._offsets.get(key):
                self._offsets[key] = max(self._offsets.get(key, 0), tp.offset)
                self._dirty = True

    def checkpoint(self) -> None:
        """Deliver the outputs, then save state + offsets (nothing when unchanged)."""
        if not self._dirty or not self._assignment:
            return
        if self._producer.flush(30) != 0:
            log.warning("checkpoint_skipped", reason="outputs not delivered")
            return
        size = self._checkpoints.save(
            self._group,
            self._assignment,
            {"offsets": self._offsets, "state": dump_state(self._processor, self._state)},
        )
        self._dirty = False
        log.debug("checkpoint_saved", assignment=self._assignment, bytes=size)

    def _track_partitions(self) -> None:
        """Tell the processor which predictions partitions this worker reads and which
        of them are read to their end (the event-time warm-up waits for the others)."""
        topic = self._topics.predictions
        assigned = [tp for tp in self._raw_consumer.assignment() if tp.topic == topic]
        parts = frozenset(tp.partition for tp in assigned)
        if parts != self._state.sources:
            self._processor.assign(self._state, parts)
        if not assigned or not self._processor.warming_up(self._state):
            return
        drained = []
        for tp in self._raw_consumer.position(assigned):
            _, high = self._raw_consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= high:
                drained.append(tp.partition)
        self._emit(self._processor.caught_up(self._state, drained))

    def handle(self, batch: list[Received[Event]]) -> None:
        events: list[PredictionLogged | LabelObserved] = []
        partitions: list[int] = []
        for r in batch:
            e = r.event
            if isinstance(e, PredictionLogged):
                if (e.model, e.version) not in self._known:
                    self._install(e.model, e.version)
            elif not isinstance(e, LabelObserved):
                continue
            events.append(e)
            partitions.append(r.partition)
        self._emit(self._processor.handle_batch(events, self._state, partitions))

    def _emit(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, DriftSignal):
                self._send(out)
            elif isinstance(out, WindowReport):
                self._report(out)
            elif isinstance(out, ReferenceLearned):
                self._learned(out.reference)
            elif isinstance(out, WarmupDropped):
                self._metrics.on_warmup_dropped(out)
                log.warning(
                    "warmup_dropped",
                    model=out.model,
                    version=out.version,
                    dropped=out.dropped,
                    total=out.total,
                )

    def _send(self, signal: DriftSignal) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topics.drift_signals,
                    key=signal.model.encode(),
                    value=encode_event(signal),
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._metrics.on_signal(signal)
        self.signals_sent += 1
        if signal.drift_detected:
            log.info(
                "drift_signal",
                model=signal.model,
                version=signal.version,
                kind=signal.kind,
                feature=signal.feature,
                test=signal.test,
                severity=signal.severity.name,
                statistic=signal.statistic,
            )

    def _report(self, report: WindowReport) -> None:
        self._metrics.on_report(report)
        self.last_reports[(report.model, report.version)] = report
        log.info("drift_window", **summary(report))
        if self._report_dir is not None:
            self._report_dir.mkdir(parents=True, exist_ok=True)
            stem = self._report_dir / f"{report.model}-{report.version}"
            stem.with_suffix(".txt").write_text(render_text(report))
            stem.with_suffix(".html").write_text(render_html(report))

    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Process until ``stop`` (or ``idle_exit_seconds`` without messages once it
        owns partitions)."""
        last_seen = last_checkpoint = time.monotonic()
        try:
            while not stop.is_set():
                self._track_partitions()
                batch = self._consumer.poll(max_messages=1000, timeout=0.2)
                if batch:
                    self.handle(batch)
                    last_seen = time.monotonic()
                elif (
                    idle_exit_seconds is not None
                    and self._assignment  # idle only once it owns partitions
                    and time.monotonic() - max(last_seen, self._assigned_at) > idle_exit_seconds
                ):
                    break
                self._consumer.done(batch)
                self._advance_to_positions()
                self._producer.poll(0)
                self.processed += len(batch)
                self._refresh_references()
                if time.monotonic() - last_checkpoint >= self._checkpoint_interval:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
            self.checkpoint()
        finally:
            self._producer.flush(10)
            self._consumer.close()
        log.info("drift_stopped", processed=self.processed, signals=self.signals_sent)
        return self.processed
