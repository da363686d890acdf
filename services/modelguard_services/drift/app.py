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

The consumer, the offsets (one key format, ``topic:partition``), the checkpoint cadence
and the per-message error boundary belong to the shared runtime
(``modelguard.adapters.partitioned``, ADR 0010); this module supplies restore / save /
handle_batch. Redis calls go through a guarded client: during a Redis outage the
service waits with backoff (``modelguard_dependency_up{dependency="redis"}`` is 0) and
resumes by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import structlog
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore
from modelguard.adapters.guarded_redis import make_guarded_redis
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import PartitionedRuntime
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.base import Event
from modelguard.contracts.codec import encode_event
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import (
    CheckpointError,
    DriftConfig,
    DriftProcessor,
    DriftState,
    Output,
    ReferenceDataError,
    ReferenceLearned,
    ReferenceProfile,
    WarmupDropped,
    WindowReport,
    dump_state,
    load_state,
    render_html,
    render_text,
    summary,
)
from modelguard_services.drift.metrics import DriftMetrics
from modelguard_services.runtime import partitioned_runtime

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
        group_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        report_dir: Path | None = None,
        reference_refresh_seconds: float = 5.0,
        worker: str = "drift-0",
        checkpoint_interval: float = 2.0,
    ) -> None:
        topics = settings.topics
        group_id = group_id or settings.consumer_group(SERVICE)
        self._topics = topics
        self.runtime: PartitionedRuntime[Event] = partitioned_runtime(
            settings,
            registry,
            SERVICE,
            group_id,
            {topics.predictions: PredictionLogged, topics.labels: LabelObserved},
            checkpoint_interval=checkpoint_interval,
            clock=clock,
        )
        self._producer = self.runtime.producer
        self._raw_consumer = self.runtime.consumer
        self.redis_guard = DependencyGuard("redis", registry)
        redis_client = make_guarded_redis(settings.redis_connection(), self.redis_guard)
        self._store = ReferenceStore(redis_client, settings.redis_prefix)
        self._checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)
        self._group = group_id
        self._checkpoint_interval = checkpoint_interval
        self._processor = DriftProcessor(config, worker=worker)
        self._state = DriftState()
        self._assignment = ""
        self.restored = False
        self._metrics = DriftMetrics(registry)
        self._report_dir = report_dir
        self._refresh = reference_refresh_seconds
        self._known: dict[tuple[str, str], str | None] = {}
        self._last_refresh = time.monotonic()
        self.signals_sent = 0
        self.last_reports: dict[tuple[str, str], WindowReport] = {}
        self.runtime.attach(self)

    @property
    def processed(self) -> int:
        return self.runtime.processed

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

    def restore(self, partitions: Sequence[int]) -> dict[str, int]:
        """Every assignment: the checkpoint of exactly this set of partitions, or empty
        state (then the runtime resumes at the group's committed offsets)."""
        tps = [
            TopicPartition(t, p)
            for t in (self._topics.predictions, self._topics.labels)
            for p in partitions
        ]
        self._assignment = self._assignment_key(tps)
        self._state, self._known = DriftState(), {}
        offsets: dict[str, int] = {}
        self.restored = False
        try:
            data = self._checkpoints.load(self._group, self._assignment)
            if data is not None:
                self._state = load_state(self._processor, data["state"])
                offsets = {str(k): int(v) for k, v in data["offsets"].items()}
                self.restored = True
        except (CheckpointError, ValueError, KeyError, TypeError) as exc:
            log.error("checkpoint_unusable", assignment=self._assignment, error=str(exc))
            self._state, offsets = DriftState(), {}
        # before the first event of these partitions: the warm-up must wait for all
        self._processor.assign(self._state, list(partitions))
        log.info("partitions_assigned", assignment=self._assignment, restored=self.restored)
        return offsets

    def release(self, partitions: Sequence[int]) -> None:
        self._state, self._assignment = DriftState(), ""
        self._processor.assign(self._state, [])

    def save(self, offsets: Mapping[str, int]) -> bool:
        """Save state + offsets under this assignment (outputs are delivered already)."""
        if not self._assignment:
            return True
        size = self._checkpoints.save(
            self._group,
            self._assignment,
            {"offsets": dict(offsets), "state": dump_state(self._processor, self._state)},
        )
        log.debug("checkpoint_saved", assignment=self._assignment, bytes=size)
        return True

    def checkpoint(self) -> bool:
        """Deliver the outputs, then save state + offsets (nothing when unchanged)."""
        return self.runtime.checkpoint()

    def tick(self) -> None:
        self._track_partitions()
        self._refresh_references()

    def _track_partitions(self) -> None:
        """Tell the processor which predictions partitions this worker reads and which
        of them are read to their end (the event-time warm-up waits for the others)."""
        topic = self._topics.predictions
        assigned = [tp for tp in self.runtime.assigned if tp.topic == topic]
        parts = frozenset(tp.partition for tp in assigned)
        if parts != self._state.sources:
            self._processor.assign(self._state, parts)
        if not assigned or not self._processor.warming_up(self._state):
            return
        drained = []
        for tp in self._raw_consumer.position(assigned):
            low, high = self._raw_consumer.get_watermark_offsets(tp, cached=True)
            # an empty partition has no position (nothing was ever fetched from it): it
            # is read to its end as soon as the broker says it holds nothing
            if high >= 0 and (tp.offset >= high or (tp.offset < 0 and low == high)):
                drained.append(tp.partition)
        self._emit(self._processor.caught_up(self._state, drained))

    def handle(self, received: Received[Event]) -> None:
        self.handle_batch([received])

    def handle_batch(self, batch: list[Received[Event]]) -> None:
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
        self.redis_guard.stop = stop
        processed = self.runtime.run(stop, idle_exit_seconds=idle_exit_seconds)
        log.info("drift_stopped", processed=processed, signals=self.signals_sent)
        return processed
