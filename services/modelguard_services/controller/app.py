"""The controller loop, separate from process start-up so tests can run it in a thread.

Per iteration: hold the lease (else stand by), consume a batch of metric windows and
drift signals, let the pure state machine decide, then for each decision:

1. save the new state and the decision in the outbox (fenced by the lease);
2. apply the weight change by compare-and-set on the routing table (the decision id is
   stored in the table, so a retry recognises its own write);
3. publish the :class:`RoutingDecision` to Kafka and wait for the broker's ack;
4. clear the outbox and save the input offsets.

A successor (restart or other replica) first finishes the outbox: it re-applies only
if the table is still at the decision's base revision, and re-publishes only if the
decision id is not on the decisions topic yet. See ADR 0005.

A Redis outage does not end the process: the replica steps down (drops its in-memory
state, closes its consumer), reports ``modelguard_dependency_up{dependency="redis"}``
0, waits with capped exponential backoff and, once Redis answers, competes for the
lease again. The new take-over is the successor path above (snapshot, input offsets
and outbox from Redis), so the one-decision-per-incident guarantee is the crash one.

Metric windows arrive as one partial per source partition (ADR 0002); the pure core
merges them into whole windows (``modelguard.core.control.partials``), told the partition
count of the predictions topic, which the leader reads from Kafka metadata on take-over.

The parts live in their own modules: :mod:`.metrics` (Prometheus families),
:mod:`.outbox` (apply, publish, finish an outbox), :mod:`.consumer` (the leader's
assigned consumer) and :mod:`.store` (lease, snapshot); this module is the loop.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import redis
import structlog
from confluent_kafka import Consumer, KafkaException
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.dependency import REDIS_TRANSIENT, Backoff, DependencyGuard
from modelguard.adapters.ingest import IngestMetrics, Received, ValidatingConsumer
from modelguard.adapters.kafka import make_low_latency_consumer, make_producer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.routing import RoutingTable
from modelguard.core.control import ModelState, Policy, RoutingView, assess, decide, observe
from modelguard.core.control.machine import evidence_for
from modelguard.errors import DependencyError
from modelguard_services.controller.consumer import AssignedConsumer, normalise_offsets
from modelguard_services.controller.metrics import ACTIONS, ControllerMetrics
from modelguard_services.controller.outbox import (
    DecisionApplier,
    RoutingWriter,
    published_decision_ids,
)
from modelguard_services.controller.store import ControllerStore, LostLeaseError, Snapshot

__all__ = [
    "ACTIONS",
    "SERVICE",
    "ControlEvent",
    "ControllerMetrics",
    "ControllerService",
    "RoutingWriter",
    "published_decision_ids",
]

SERVICE = "controller"
log = structlog.get_logger("modelguard.controller")
ControlEvent = MetricWindowClosed | DriftSignal
#: Failures of the brokers seen by the leader: an unacknowledged decision publish or
#: outbox check (``DependencyError``), or a client call failing (``KafkaException``).
KAFKA_FAILURES: tuple[type[BaseException], ...] = (DependencyError, KafkaException)


class ControllerService:
    """Consume -> decide -> apply -> publish, while holding the lease; until ``stop``."""

    def __init__(
        self,
        settings: CommonSettings,
        registry: CollectorRegistry,
        policies: dict[str, Policy],
        writer: RoutingWriter,
        *,
        dry_run: bool = False,
        replica: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        lease_ttl: float = 3.0,
        tick_seconds: float = 1.0,
        crash_at: str | None = None,
    ) -> None:
        self._settings = settings
        self._topics = settings.topics
        self._policies = policies
        self._writer = writer
        self.dry_run = dry_run
        self.replica = replica or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self._clock = clock
        self._tick = tick_seconds
        self._crash_at = crash_at
        self._redis = make_redis(settings.redis_connection())
        self._store = ControllerStore(
            self._redis, settings.redis_keys, self.replica, int(lease_ttl * 1000)
        )
        self._registry = registry
        #: Reports Redis and Kafka outages (``modelguard_dependency_up``); waits are in
        #: ``run``.
        self.redis_guard = DependencyGuard("redis", registry)
        self.kafka_guard = DependencyGuard("kafka", registry, transient=KAFKA_FAILURES)
        self._backoff = Backoff(base=0.1, cap=5.0)
        self._rng = random.Random()
        self._ingest_metrics = IngestMetrics(registry, SERVICE)
        self.metrics = ControllerMetrics(registry)
        self._producer = make_producer(settings.kafka_connection(), linger_ms=0)
        self._consumer: ValidatingConsumer[ControlEvent] | None = None
        self._assigned: AssignedConsumer | None = None
        self._snap = Snapshot()
        self.is_leader = False
        #: Partition count of the predictions topic (partials per window), from metadata.
        self.source_partitions: int | None = None
        self._log = log.bind(replica=self.replica, dry_run=dry_run)
        self._applier = DecisionApplier(
            writer,
            self._producer,
            settings.kafka_connection(),
            self._topics.routing_decisions,
            actor=f"controller:{self.replica}",
            metrics=self.metrics,
            log=self._log,
        )
        for model in sorted(policies):
            self.metrics.init_decisions(model, dry_run)

    @property
    def decisions(self) -> list[RoutingDecision]:
        """Every decision this replica published, in order."""
        return self._applier.published

    # --- leadership -------------------------------------------------------------------

    def _take_over(self) -> None:
        self._snap = self._store.load()
        self._snap.offsets = normalise_offsets(self._snap.offsets)
        raw = make_low_latency_consumer(
            self._settings.kafka_connection(),
            self._settings.consumer_group(SERVICE),
            enable_auto_commit=False,
        )
        self._assigned = AssignedConsumer(raw, self._snap.offsets)
        self.source_partitions = self._source_partitions(raw)
        models: dict[str, type[ControlEvent]] = {
            self._topics.metric_windows: MetricWindowClosed,
            self._topics.drift_signals: DriftSignal,
        }
        self._consumer = ValidatingConsumer(
            self._assigned,  # type: ignore[arg-type]
            models,
            DeadLetterPublisher(self._producer, self._topics.dead_letter, stage=SERVICE),
            self._ingest_metrics,
            self._clock,
        )
        self.is_leader = True
        self.metrics.leader.labels(self.replica).set(1)
        self._log.info(
            "leader_acquired",
            models=sorted(self._snap.models),
            outbox=len(self._snap.outbox),
            source_partitions=self.source_partitions,
        )
        self._finish_outbox()

    def _source_partitions(self, consumer: Consumer) -> int | None:
        """How many partials a window has: the predictions topic's partition count (the
        metrics processor computes one partial per source partition, ADR 0002)."""
        topic = self._topics.predictions
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:  # advisory: then partials merge by grace/timeout
            self._log.warning("source_partitions_unknown", topic=topic, error=str(exc))
            return None
        if meta is None or meta.error is not None or not meta.partitions:
            self._log.warning("source_partitions_unknown", topic=topic)
            return None
        return len(meta.partitions)

    def _step_down(self, why: str) -> None:
        if self._consumer is not None:
            self._consumer.close()
        elif self._assigned is not None:  # a take-over that failed half-way
            self._assigned.close()
        self._consumer = self._assigned = None
        self.is_leader = False
        self.metrics.leader.labels(self.replica).set(0)
        self._log.warning("leader_lost", reason=why)

    # --- main loop --------------------------------------------------------------------

    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Run until ``stop`` (or ``idle_exit_seconds`` without input); returns the number
        of decisions this replica published."""
        last_seen = time.monotonic()
        next_tick = 0.0
        renew_every = self._store.ttl_ms / 3000.0
        next_renew = 0.0
        failures = kafka_failures = 0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_renew or not self.is_leader:
                        holds = self._store.hold_lease()
                        self.redis_guard.mark_up()
                        failures = 0
                        next_renew = time.monotonic() + renew_every
                        if not holds:
                            if self.is_leader:
                                self._step_down("lease taken by another replica")
                            stop.wait(0.2)
                            continue
                        if not self.is_leader:
                            self._take_over()
                    last_seen, next_tick = self._iteration(last_seen, next_tick)
                    if not self.kafka_guard.up:
                        self.kafka_guard.mark_up()
                        kafka_failures = 0
                except LostLeaseError as exc:
                    self._step_down(str(exc))
                    continue
                except REDIS_TRANSIENT as exc:
                    if isinstance(exc, redis.AuthenticationError):
                        raise  # wrong user or password: waiting will not fix it
                    # Like a crash, without exiting: the next take-over restores the
                    # snapshot, offsets and outbox from Redis (ADR 0005).
                    self.redis_guard.mark_down(exc)
                    if self.is_leader:
                        self._step_down(f"redis unreachable: {exc}")
                    stop.wait(self._backoff.delay(failures, self._rng))
                    failures += 1
                    last_seen = time.monotonic()  # an outage is not idleness
                    continue
                except KAFKA_FAILURES as exc:
                    if stop.is_set():
                        break
                    # The same successor path as a Redis outage or a crash: the next
                    # take-over (this replica keeps the lease) finishes the outbox saved
                    # before the failed publish (ADR 0005); only now the process lives on.
                    self.kafka_guard.mark_down(exc)
                    if self.is_leader or self._assigned is not None:
                        self._step_down(f"kafka unavailable: {exc}")
                    stop.wait(self._backoff.delay(kafka_failures, self._rng))
                    kafka_failures += 1
                    last_seen = time.monotonic()
                    continue
                if (
                    idle_exit_seconds is not None
                    and time.monotonic() - last_seen > idle_exit_seconds
                ):
                    break
        finally:
            if self._consumer is not None:
                self._consumer.close()
            self._producer.flush(10)
            if self.is_leader:
                with contextlib.suppress(*REDIS_TRANSIENT):  # the lease expires anyway
                    self._store.release_lease()
                self.metrics.leader.labels(self.replica).set(0)
        self._log.info("controller_stopped", decisions=len(self.decisions))
        return len(self.decisions)

    def _iteration(self, last_seen: float, next_tick: float) -> tuple[float, float]:
        consumer, assigned = self._consumer, self._assigned
        if consumer is None or assigned is None:
            raise LostLeaseError("not the leader: no consumer (take over first)")
        if self._snap.outbox:
            self._finish_outbox()
        batch = consumer.poll(max_messages=500, timeout=0.1)
        dirty: set[str] = set()
        for received in batch:
            if self._observe(received):
                dirty.add(received.event.model)
        if batch:
            last_seen = time.monotonic()
        if time.monotonic() >= next_tick:
            dirty |= set(self._snap.models)
            next_tick = time.monotonic() + self._tick
        for model in sorted(dirty):
            self._evaluate(model)
        consumer.done(batch)
        if batch or dirty:
            self._snap.offsets.update(assigned.positions())
            self._store.save(self._snap)
        self._producer.poll(0)
        return last_seen, next_tick

    def _observe(self, received: Received[ControlEvent]) -> bool:
        event = received.event
        policy = self._policies.get(event.model)
        if policy is None:
            return False  # a model without a policy is not controlled
        self.metrics.init_decisions(event.model, self.dry_run)
        state = self._snap.models.setdefault(event.model, ModelState(model=event.model))
        late = state.late_partials
        added = observe(state, event, policy, partitions=self.source_partitions)
        if state.late_partials > late:
            self.metrics.late_partials.labels(event.model).inc(state.late_partials - late)
            self._log.warning(
                "late_partial_window",
                model=event.model,
                version=event.version,
                event_id=event.event_id,
                partitions=getattr(event, "partitions", None),
            )
        return added

    # --- deciding and applying -------------------------------------------------------

    def _routing(self, model: str) -> tuple[RoutingTable | None, RoutingView]:
        table = self._writer.read(model)
        frozen = model in self._store.frozen()
        if table is None:
            return None, RoutingView(frozen=frozen)
        for version, weight in table.weights.items():
            self.metrics.weight.labels(model, version).set(weight)
        return table, RoutingView(
            weights=dict(table.weights), revision=table.revision, frozen=frozen
        )

    def _evaluate(self, model: str) -> None:
        policy = self._policies[model]
        state = self._snap.models.get(model) or ModelState(model=model)
        for _attempt in range(3):
            started = time.monotonic()
            table, view = self._routing(model)
            now = self._clock()
            new_state, decisions = decide(policy, state, view, now)
            self._export(model, new_state, view, now)
            if not decisions:
                self._snap.models[model] = new_state
                return
            decisions = [d.model_copy(update={"dry_run": self.dry_run}) for d in decisions]
            if self.dry_run:
                new_state.expected_revision = view.revision
            self._snap.models[model] = new_state
            self._snap.outbox = decisions
            self._store.save(self._snap)
            self._maybe_crash("after_outbox")
            applied = self._applier.apply(decisions, table)
            if applied is None:  # another writer went first: decide again on fresh data
                self.metrics.conflicts.labels(model).inc()
                self._snap.models[model] = state
                self._snap.outbox = []
                self._store.save(self._snap)
                continue
            self._maybe_crash("after_cas")
            self._applier.publish(applied)
            self._maybe_crash("after_publish")
            self._snap.outbox = []
            self._store.save(self._snap)
            self.metrics.decide_seconds.observe(time.monotonic() - started)
            return

    def _finish_outbox(self) -> None:
        """Complete decisions a predecessor saved but may not have applied/published."""
        pending = list(self._snap.outbox)
        if not pending:
            return
        republished = self._applier.finish(pending)
        self._log.info("outbox_finished", pending=len(pending), republished=republished)
        self._snap.outbox = []
        self._store.save(self._snap)

    def _export(self, model: str, state: ModelState, view: RoutingView, now: datetime) -> None:
        self.metrics.incidents.labels(model).set(len(state.incidents))
        self.metrics.pending_partials.labels(model).set(len(state.pending))
        policy = self._policies[model]
        for version in view.serving:
            status = assess(policy, evidence_for(state, version, now)).status
            for s in ("healthy", "breach", "inconclusive", "error"):
                self.metrics.verdict.labels(model, version, s).set(1 if s == status else 0)

    def _maybe_crash(self, point: str) -> None:
        """Fault injection for the kill -9 tests (``MODELGUARD_CONTROLLER_CRASH_AT``)."""
        if self._crash_at == point:
            self._log.warning("crash_injected", point=point)
            os.kill(os.getpid(), signal.SIGKILL)
