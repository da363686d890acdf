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
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, get_args

import redis
import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.dependency import REDIS_TRANSIENT, Backoff, DependencyGuard
from modelguard.adapters.ingest import IngestMetrics, Received, ValidatingConsumer
from modelguard.adapters.kafka import (
    KafkaConnection,
    client_config,
    make_low_latency_consumer,
    make_producer,
)
from modelguard.adapters.prometheus import counter, gauge, histogram
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import telemetry
from modelguard.contracts.codec import decode_event, encode_event
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.routing import RoutingTable
from modelguard.core.control import ModelState, Policy, RoutingView, assess, decide, observe
from modelguard.core.control.machine import evidence_for
from modelguard.routing import RevisionConflictError
from modelguard_services.controller.store import ControllerStore, LostLeaseError, Snapshot

SERVICE = "controller"
log = structlog.get_logger("modelguard.controller")
ControlEvent = MetricWindowClosed | DriftSignal


class RoutingWriter(Protocol):
    """What the controller needs of the routing table writer
    (``modelguard.routing.RoutingTableStore``)."""

    def read(self, model: str) -> RoutingTable | None: ...

    def write(
        self,
        model: str,
        weights: dict[str, float],
        *,
        expected_revision: int,
        actor: str,
        reason: str = "",
        decision_id: str | None = None,
        base: RoutingTable | None = None,
    ) -> RoutingTable: ...


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = counter(telemetry.MODELGUARD_CONTROLLER_DECISIONS, registry)
        self.leader = gauge(telemetry.MODELGUARD_CONTROLLER_LEADER, registry)
        self.verdict = gauge(telemetry.MODELGUARD_CONTROLLER_VERDICT, registry)
        self.weight = gauge(telemetry.MODELGUARD_ROUTING_WEIGHT, registry)
        self.incidents = gauge(telemetry.MODELGUARD_CONTROLLER_OPEN_INCIDENTS, registry)
        self.conflicts = counter(telemetry.MODELGUARD_CONTROLLER_CAS_CONFLICTS, registry)
        self.late_partials = counter(telemetry.MODELGUARD_CONTROLLER_LATE_PARTIALS, registry)
        self.pending_partials = gauge(
            telemetry.MODELGUARD_CONTROLLER_PENDING_PARTIAL_WINDOWS, registry
        )
        self.decide_seconds = histogram(telemetry.MODELGUARD_CONTROLLER_APPLY_SECONDS, registry)
        self._initialised: set[tuple[str, str]] = set()

    def init_decisions(self, model: str, dry_run: bool) -> None:
        """Create every action's decision series of ``model`` at 0, so that the first
        decision is a 0 -> 1 step ``increase()`` sees (a series born at 1 has none)."""
        key = (model, str(dry_run).lower())
        if key in self._initialised:
            return
        self._initialised.add(key)
        for action in ACTIONS:
            self.decisions.labels(model, action, key[1])
        self.late_partials.labels(model)
        self.pending_partials.labels(model)

    def count_decision(self, d: RoutingDecision) -> None:
        self.init_decisions(d.model, d.dry_run)
        self.decisions.labels(d.model, d.action, str(d.dry_run).lower()).inc()


#: Every ``RoutingDecision.action``.
ACTIONS: tuple[str, ...] = get_args(RoutingDecision.model_fields["action"].annotation)


class _AssignedConsumer:
    """A consumer that, asked to subscribe, assigns every partition of the topics at
    the snapshot's offsets (only the lease holder consumes: no group rebalances)."""

    def __init__(self, consumer: Consumer, offsets: dict[str, int]) -> None:
        self._c = consumer
        self._offsets = offsets
        self.partitions: list[TopicPartition] = []

    def subscribe(self, topics: list[str]) -> None:
        deadline = time.monotonic() + 15
        meta = self._c.list_topics(timeout=10)
        while any(t not in meta.topics for t in topics) and time.monotonic() < deadline:
            time.sleep(0.2)  # just-created topics take a moment to appear in metadata
            meta = self._c.list_topics(timeout=10)
        parts: list[TopicPartition] = []
        for t in topics:
            if t not in meta.topics:
                raise RuntimeError(f"topic {t!r} does not exist")
            for p in sorted(meta.topics[t].partitions):
                parts.append(TopicPartition(t, p, self._offsets.get(f"{t}|{p}", OFFSET_BEGINNING)))
        self.partitions = parts
        self._c.assign(parts)

    def positions(self) -> dict[str, int]:
        out = {}
        for tp in self._c.position(self.partitions):
            if tp.offset >= 0:
                out[f"{tp.topic}|{tp.partition}"] = tp.offset
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


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
        #: Reports Redis outages (``modelguard_dependency_up``); waits are in ``run``.
        self.redis_guard = DependencyGuard("redis", registry)
        self._backoff = Backoff(base=0.1, cap=5.0)
        self._rng = random.Random()
        self._ingest_metrics = IngestMetrics(registry, SERVICE)
        self.metrics = ControllerMetrics(registry)
        self._producer = make_producer(settings.kafka_connection(), linger_ms=0)
        self._consumer: ValidatingConsumer[ControlEvent] | None = None
        self._assigned: _AssignedConsumer | None = None
        self._snap = Snapshot()
        self.decisions: list[RoutingDecision] = []
        self.is_leader = False
        #: Partition count of the predictions topic (partials per window), from metadata.
        self.source_partitions: int | None = None
        self._log = log.bind(replica=self.replica, dry_run=dry_run)
        for model in sorted(policies):
            self.metrics.init_decisions(model, dry_run)

    # --- leadership -------------------------------------------------------------------

    def _take_over(self) -> None:
        self._snap = self._store.load()
        raw = make_low_latency_consumer(
            self._settings.kafka_connection(),
            self._settings.consumer_group(SERVICE),
            enable_auto_commit=False,
        )
        self._assigned = _AssignedConsumer(raw, dict(self._snap.offsets))
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
        failures = 0
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
        assert self._consumer is not None
        if self._snap.outbox:
            self._finish_outbox()
        batch = self._consumer.poll(max_messages=500, timeout=0.1)
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
        self._consumer.done(batch)
        if batch or dirty:
            assert self._assigned is not None
            self._snap.offsets.update(self._assigned.positions())
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
            applied = self._apply(decisions, table)
            if applied is None:  # another writer went first: decide again on fresh data
                self.metrics.conflicts.labels(model).inc()
                self._snap.models[model] = state
                self._snap.outbox = []
                self._store.save(self._snap)
                continue
            self._maybe_crash("after_cas")
            self._publish(applied)
            self._maybe_crash("after_publish")
            self._snap.outbox = []
            self._store.save(self._snap)
            self.metrics.decide_seconds.observe(time.monotonic() - started)
            return

    def _apply(
        self, decisions: list[RoutingDecision], table: RoutingTable | None
    ) -> list[RoutingDecision] | None:
        """Apply the weight change (if any); decisions with ``revision_after`` set from
        the table, or None on a conflict with another writer."""
        out = []
        for d in decisions:
            if d.new_weights == d.old_weights or d.dry_run:
                out.append(d)
                continue
            written = self._write(d, table)
            if written is None:
                return None
            out.append(d.model_copy(update={"revision_after": written.revision}))
        return out

    def _write(self, d: RoutingDecision, table: RoutingTable | None) -> RoutingTable | None:
        assert d.revision_before is not None
        try:
            return self._writer.write(
                d.model,
                dict(d.new_weights),
                expected_revision=d.revision_before,
                actor=f"controller:{self.replica}",
                reason=d.reason[:500],
                decision_id=d.decision_id,
                base=table,
            )
        except RevisionConflictError:
            current = self._writer.read(d.model)
            if current is not None and current.decision_id == d.decision_id:
                return current  # our own earlier write (a retry after a crash)
            self._log.info(
                "routing_conflict",
                model=d.model,
                decision_id=d.decision_id,
                expected=d.revision_before,
                current=current.revision if current else None,
            )
            return None

    def _publish(self, decisions: Iterable[RoutingDecision]) -> None:
        errors: list[str] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        batch = list(decisions)
        for d in batch:
            self._producer.produce(
                self._topics.routing_decisions,
                key=d.model.encode(),
                value=encode_event(d),
                headers=[("event_type", RoutingDecision.schema_name.encode())],
                on_delivery=delivered,
            )
        remaining = self._producer.flush(10)
        if remaining or errors:
            raise RuntimeError(f"decision publish failed: {errors or 'timeout'}")
        for d in batch:
            self.decisions.append(d)
            self.metrics.count_decision(d)
            self._log.warning(
                "routing_decision",
                model=d.model,
                version=_subject(d),
                decision_id=d.decision_id,
                incident_id=d.incident_id,
                action=d.action,
                reason=d.reason,
                old_weights=d.old_weights,
                new_weights=d.new_weights,
                revision=d.revision_after,
                dry_run=d.dry_run,
            )

    def _finish_outbox(self) -> None:
        """Complete decisions a predecessor saved but may not have applied/published."""
        pending = list(self._snap.outbox)
        if not pending:
            return
        published = published_decision_ids(
            self._settings.kafka_connection(), self._topics.routing_decisions
        )
        todo: list[RoutingDecision] = []
        for d in pending:
            if d.new_weights != d.old_weights and not d.dry_run:
                current = self._writer.read(d.model)
                if current is not None and current.decision_id == d.decision_id:
                    d = d.model_copy(update={"revision_after": current.revision})
                elif current is not None and current.revision == d.revision_before:
                    written = self._write(d, current)
                    if written is None:
                        continue
                    d = d.model_copy(update={"revision_after": written.revision})
                else:
                    self._log.warning(
                        "outbox_decision_superseded", model=d.model, decision_id=d.decision_id
                    )
                    continue
            if d.decision_id not in published:
                todo.append(d)
        if todo:
            self._publish(todo)
        self._log.info("outbox_finished", pending=len(pending), republished=len(todo))
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


def _subject(d: RoutingDecision) -> str | None:
    """The version a decision is about: the one losing traffic in a rollback, the one
    gaining it in a ramp or promotion."""
    sign = -1.0 if d.action in ("rollback", "hold") else 1.0
    delta = {v: sign * (w - d.old_weights.get(v, 0.0)) for v, w in d.new_weights.items()}
    best = max(delta, key=lambda v: delta[v], default=None)
    return best if best is not None and delta[best] > 0 else None


def published_decision_ids(connection: KafkaConnection, topic: str, tail: int = 1000) -> set[str]:
    """Decision ids among the last ``tail`` records of every partition of ``topic``.

    Reads by assignment (no group membership, nothing committed); the group id only
    satisfies librdkafka and is derived from the topic name (so from the deployment).
    """
    consumer = Consumer(
        client_config(
            connection,
            **{
                "group.id": f"{topic}-outbox-check-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = []
        ends: dict[int, int] = {}
        for p in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                parts.append(TopicPartition(topic, p, max(low, high - tail)))
                ends[p] = high
        if not parts:
            return set()
        consumer.assign(parts)
        seen: set[str] = set()
        done: set[int] = set()
        deadline = time.monotonic() + 15
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                part, err = msg.partition() or 0, msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(part)
                    continue
                with contextlib.suppress(ValueError):
                    seen.add(decode_event(RoutingDecision, msg.value()).decision_id)
                if (msg.offset() or 0) + 1 >= ends[part]:
                    done.add(part)
        if len(done) < len(ends):
            raise RuntimeError(f"could not read the tail of {topic} to check the outbox")
        return seen
    finally:
        consumer.close()
