"""The drift service loop, separated from process start-up so tests run it in a thread.

**One drift state per partition** (ADR 0015): predictions partition ``n`` and labels
partition ``n`` (co-partitioned by prediction id, ADR 0002) feed one
:class:`~modelguard.core.drift.DriftState` and nothing else does
(:mod:`~modelguard_services.drift.partitions`). Every output (windows, alarms, concept
signals, their ids) is a function of one partition's two streams, whatever the batching,
the interleaving of partitions and topics, or the worker that reads them. Signal ids
carry the partition (the state's ``stream``, ``p<n>``, prefixes the monitor's origin),
so two partitions never give one id. Count windows and warm-ups are per partition: a
version's window closes after ``window_events`` predictions *of one partition*.

State is recoverable (ADR 0008): every ``checkpoint_interval`` seconds, once its outputs
are delivered, the worker saves each changed partition's state (JSON, see
``core.drift.checkpoint``) *with that partition's two offsets* to Redis, under its group
and the partition (:class:`~modelguard.adapters.drift_store.DriftCheckpoints`). On every
assignment (start, restart after kill -9, rebalance, scale-out) each assigned partition
loads its own checkpoint and resumes at the offsets saved with it, so a partition moved
to another worker continues exactly: nothing replayed from offset 0, nothing lost. A
partition without a checkpoint starts empty at the group's committed offsets.
Checkpoints of the per-assignment format before ADR 0015 (keys like ``l0,1,2|p0,1,2``)
are not read: after an upgrade each partition starts at the committed offsets (at most
one window per version and partition lost, once).

References: a reference set by an operator (``modelguard drift reference``) is installed
in every partition's state as soon as the worker sees the version (and on a change,
polled every ``reference_refresh_seconds``). A version without one warms up on each
partition (its first ``warmup_events`` predictions there) and, at that point in the
stream, the processor's ``adopt`` hook publishes the learned reference with
``only_if_absent``: the first partition to learn wins, every partition learning later
installs the published one right there (a learned reference in Redis is never installed
earlier), so a replay tests the same events against the same reference.

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
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.delivery import RetriedOutputs
from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore, partition_name
from modelguard.adapters.guarded_redis import make_guarded_redis
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import PartitionedRuntime, offsets_of
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.base import Event
from modelguard.contracts.codec import encode_event
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import (
    CheckpointError,
    DriftConfig,
    DriftProcessor,
    Output,
    ReferenceDataError,
    ReferenceLearned,
    ReferenceProfile,
    WarmupDropped,
    WindowReport,
    render_html,
    render_text,
    summary,
)
from modelguard_services.drift.metrics import DriftMetrics
from modelguard_services.drift.partitions import DriftPartitions
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
        #: drift signals, sent again when their delivery failed (before any checkpoint
        #: saves offsets past them)
        self.outputs = RetriedOutputs(self._producer)
        self._raw_consumer = self.runtime.consumer
        self.redis_guard = DependencyGuard("redis", registry)
        redis_client = make_guarded_redis(settings.redis_connection(), self.redis_guard)
        self._store = ReferenceStore(redis_client, settings.redis_prefix)
        self._checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)
        self._group = group_id
        self._checkpoint_interval = checkpoint_interval
        self._processor = DriftProcessor(config, worker=worker, adopt=self._adopt)
        self.partitions = DriftPartitions(self._processor)
        #: offsets saved with each partition's state (what its checkpoint holds)
        self._saved: dict[int, dict[str, int]] = {}
        #: partitions restored from their checkpoint at the last assignment
        self.restored: list[int] = []
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
        """The version's reference from Redis into every partition's state, unless it
        is a learned one (a partition installs that at the end of its own warm-up)."""
        try:
            if self._store.is_learned(model, version):
                self._known[(model, version)] = self._store.current_id(model, version)
                return
            ref = self._store.resolve(model, version)
        except ReferenceDataError as exc:
            log.error("reference_unreadable", model=model, version=version, error=str(exc))
            ref = None
        self._known[(model, version)] = ref.reference_id if ref else None
        if ref is not None:
            for state in self.partitions.states.values():
                self._processor.set_reference(state, ref)
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

    def _adopt(self, learned: ReferenceProfile) -> ReferenceProfile:
        """The processor's ``adopt`` hook, at the point a partition's warm-up is learned:
        publish it if no reference is there yet, else install the published one."""
        version = learned.version or ""
        published = self._store.publish(learned, only_if_absent=True)
        ref = learned
        if not published.installed:
            try:
                ref = self._store.load_id(learned.model, learned.version, published.reference_id)
            except ReferenceDataError as exc:
                log.error("reference_unreadable", model=learned.model, error=str(exc))
        self._known[(learned.model, version)] = ref.reference_id
        self._metrics.on_reference(learned.model, version, ref.reference_id)
        log.info(
            "reference_learned",
            model=learned.model,
            version=version,
            learned=learned.reference_id,
            reference_id=ref.reference_id,
            installed=published.installed,
        )
        return ref

    # ------------------------------------------------------------ checkpoints
    def restore(self, partitions: Sequence[int]) -> dict[str, int]:
        """Every assignment: each partition's own checkpoint (its state and the two
        offsets saved with it), or empty state (the runtime then resumes it at the
        group's committed offsets)."""
        self.partitions.states = {}
        self._saved, self._known, self.restored = {}, {}, []
        offsets: dict[str, int] = {}
        for p in partitions:
            name = partition_name(p)
            try:
                data = self._checkpoints.load(self._group, name)
                if data is not None:
                    saved = offsets_of({str(k): int(v) for k, v in data["offsets"].items()}, p)
                    self.partitions.load(p, data["state"])
                    offsets.update(saved)
                    self._saved[p] = saved
                    self.restored.append(p)
            except (CheckpointError, ValueError, KeyError, TypeError) as exc:
                log.error("checkpoint_unusable", partition=name, error=str(exc))
                self.partitions.drop([p])
            self._metrics.forget_unused(p, self.partitions.state(p).unused_counts())
        log.info("partitions_restored", partitions=list(partitions), restored=self.restored)
        return offsets

    def release(self, partitions: Sequence[int]) -> None:
        self.partitions.drop(partitions)
        for p in partitions:
            self._saved.pop(p, None)
            self._metrics.forget_unused(p)

    def save(self, offsets: Mapping[str, int]) -> bool:
        """Save each partition whose offsets moved: its state with its two offsets,
        once every signal before them is delivered (a failed one is sent again)."""
        if not self.outputs.redeliver():
            log.warning("checkpoint_waits_for_signals", undelivered=len(self.outputs.failed))
            return False
        for p in sorted(self.partitions.states):
            mine = offsets_of(offsets, p)
            if not mine or mine == self._saved.get(p):
                continue
            size = self._checkpoints.save(
                self._group,
                partition_name(p),
                {"offsets": mine, "state": self.partitions.dump(p)},
            )
            self._saved[p] = mine
            log.debug("checkpoint_saved", partition=p, bytes=size)
        return True

    def checkpoint(self) -> bool:
        """Deliver the outputs, then save state + offsets (nothing when unchanged)."""
        return self.runtime.checkpoint()

    def tick(self) -> None:
        self._refresh_references()

    def handle(self, received: Received[Event]) -> None:
        self.handle_batch([received])

    def handle_batch(self, batch: list[Received[Event]]) -> None:
        """Split by partition (order kept within each), each part to its own state."""
        events: list[tuple[int, PredictionLogged | LabelObserved]] = []
        for r in batch:
            e = r.event
            if isinstance(e, PredictionLogged):
                if (e.model, e.version) not in self._known:
                    self._install(e.model, e.version)
            elif not isinstance(e, LabelObserved):
                continue
            events.append((r.partition, e))
        self._emit(self.partitions.handle_batch(events))
        for p in {p for p, _ in events}:
            self._metrics.on_unused(p, self.partitions.state(p).unused_counts())

    def _emit(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, DriftSignal):
                self._send(out)
            elif isinstance(out, WindowReport):
                self._report(out)
            elif isinstance(out, ReferenceLearned):
                pass  # published / adopted by the ``adopt`` hook at the point it was learned
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
        self.outputs.produce(
            self._topics.drift_signals, encode_event(signal), key=signal.model.encode()
        )
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
