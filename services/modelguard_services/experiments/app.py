"""The experiments processor loop (runnable in a thread for tests; stops on an Event).

Tasks: partition p of the exposures and outcomes topics (both keyed by unit id, same
partition count; the range assignor gives both to one consumer). The shared runtime
(``modelguard.adapters.partitioned``, ADR 0010) owns the consumer, offsets, checkpoint
cadence and the per-event error boundary. On every assignment a task's state is
restored from its Redis checkpoint and the consumer is positioned at the checkpoint's
offsets (``topic:partition`` keys), so state and offsets move together (no double
counting after a restart or rebalance). A task's saved offset is the consumer's position
after each poll, so it also moves past messages that were dead-lettered (none is
dead-lettered twice after a restart). Checkpoints write the changed unit records, the
task's partial aggregates and its offsets in one MULTI/EXEC. Redis calls go through a
guarded client: during an outage the service waits with backoff
(``modelguard_dependency_up{dependency="redis"}`` is 0) and resumes by itself.

Analyses are spread over the workers: experiment ``e`` is analysed by the worker that
owns task ``analysis_task(e, partitions)`` (a stable hash), so no single partition's
owner carries them all and each experiment has one analyst while the group is stable
(during a rebalance two may briefly overlap, which is harmless: the running p-value
only decreases, bandit updates are rate-limited through Redis and routing writes are
compare-and-set). Every ``analysis_interval`` seconds the analyst merges the partials
of all tasks (ADR 0002: per-partition partials merged downstream), runs the
statistics, publishes an ``ExperimentAnalysis`` (keyed by model), updates the per-arm
gauges, and applies ramp steps and bandit weights through the registry (routing table
writer).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import redis
import structlog
from confluent_kafka import OFFSET_BEGINNING, KafkaException
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.guarded_redis import make_guarded_redis
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import (
    PartitionedRuntime,
    offset_key,
    offsets_of,
)
from modelguard.adapters.prometheus import counter, gauge
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import telemetry
from modelguard.contracts.codec import encode_event
from modelguard.contracts.experiments import (
    ExperimentAnalysis,
    ExperimentKeys,
    ExperimentSpec,
    ExposureLogged,
    OutcomeObserved,
)
from modelguard.core.experiments import bookkeeping as bk
from modelguard.core.experiments.analysis import analysis_task, analyze
from modelguard.core.experiments.bandit import bandit_update, ramp_split
from modelguard.errors import DependencyError
from modelguard.experiments.registry import ExperimentRegistry
from modelguard.routing.store import RoutingTableStore
from modelguard_services.runtime import partitioned_runtime

SERVICE = "experiments"
log = structlog.get_logger("modelguard.experiments")
Event = ExposureLogged | OutcomeObserved


class ExperimentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = counter(telemetry.EXPERIMENT_EVENTS, registry)
        self.units = gauge(telemetry.EXPERIMENT_ARM_UNITS, registry)
        self.mean = gauge(telemetry.EXPERIMENT_ARM_METRIC_MEAN, registry)
        self.lift = gauge(telemetry.EXPERIMENT_ARM_RELATIVE_LIFT, registry)
        self.p_value = gauge(telemetry.EXPERIMENT_ARM_ALWAYS_VALID_P_VALUE, registry)
        self.chance = gauge(telemetry.EXPERIMENT_ARM_CHANCE_TO_BEAT_CONTROL, registry)
        self.weight = gauge(telemetry.EXPERIMENT_ARM_WEIGHT, registry)
        self.srm_p = gauge(telemetry.EXPERIMENT_SRM_P_VALUE, registry)
        self.srm = gauge(telemetry.EXPERIMENT_SRM_DETECTED, registry)
        self.analyses = counter(telemetry.EXPERIMENT_ANALYSES, registry)

    def observe(self, a: ExperimentAnalysis) -> None:
        self.srm.labels(a.experiment_id, a.model).set(float(a.srm_detected))
        if a.srm_p_value is not None:
            self.srm_p.labels(a.experiment_id, a.model).set(a.srm_p_value)
        self.analyses.labels(a.experiment_id, a.model, a.recommendation).inc()
        for r in a.arms:
            self.units.labels(a.experiment_id, a.model, r.arm).set(r.units)
            labels = (a.experiment_id, a.model, r.arm, a.primary_metric)
            if r.mean is not None:
                self.mean.labels(*labels).set(r.mean)
            if r.relative_lift is not None:
                self.lift.labels(*labels).set(r.relative_lift)
            if r.always_valid_p is not None:
                self.p_value.labels(*labels).set(r.always_valid_p)
            if r.chance_to_beat_control is not None:
                self.chance.labels(*labels).set(r.chance_to_beat_control)


class ExperimentsService:
    def __init__(
        self,
        settings: CommonSettings,
        registry: CollectorRegistry,
        *,
        group_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        analysis_interval: float = 5.0,
        checkpoint_interval: float = 2.0,
        seed: int = 0,
    ) -> None:
        topics = settings.topics
        group_id = group_id or settings.consumer_group(SERVICE)
        self._topics = topics
        self._group = group_id
        self._clock = clock
        self._analysis_interval = analysis_interval
        self._checkpoint_interval = checkpoint_interval
        self._rng = np.random.default_rng(seed)
        self.runtime: PartitionedRuntime[Event] = partitioned_runtime(
            settings,
            registry,
            SERVICE,
            group_id,
            {topics.exposures: ExposureLogged, topics.outcomes: OutcomeObserved},
            checkpoint_interval=checkpoint_interval,
            clock=clock,
        )
        self._producer = self.runtime.producer
        self._raw = self.runtime.consumer
        self.redis_guard = DependencyGuard("redis", registry)
        self._redis: redis.Redis = make_guarded_redis(settings.redis_connection(), self.redis_guard)
        self._keys = ExperimentKeys(settings.redis_prefix)
        self.registry = ExperimentRegistry(
            self._redis,
            self._keys,
            RoutingTableStore(self._redis, settings.redis_keys, clock=clock),
            clock=clock,
        )
        self.metrics = ExperimentMetrics(registry)
        self.tasks: dict[int, bk.TaskState] = {}
        self._offsets: dict[int, dict[str, int]] = {}
        self._partitions: int | None = None
        self.analyses: list[ExperimentAnalysis] = []
        self._last_analysis = 0.0
        self.runtime.attach(self)

    @property
    def processed(self) -> int:
        return self.runtime.processed

    # -- state ---------------------------------------------------------------------------
    def _load(self, task: int) -> tuple[bk.TaskState, dict[str, int]]:
        raw = self._redis.get(self._keys.checkpoint(self._group, task))
        state = bk.TaskState()
        if raw is None:
            return state, {}
        data = json.loads(raw)
        state.experiments = {
            e: bk.ExperimentPartial.from_dict(p) for e, p in data["experiments"].items()
        }
        cursor = 0
        while True:
            chunk: Any
            cursor, chunk = self._redis.hscan(
                self._keys.units(self._group, task), cursor, count=5000
            )
            for unit, rec in chunk.items():
                state.units[unit.decode()] = bk.UnitRecord.from_json(json.loads(rec))
            if cursor == 0:
                break
        offsets = {
            # checkpoints before ADR 0010 keyed a task's offsets by topic name only
            (k if ":" in k else offset_key(k, task)): int(v)
            for k, v in data["offsets"].items()
        }
        return state, offsets

    def checkpoint(self) -> bool:
        """Deliver outputs, then save every task's state with its offsets."""
        return self.runtime.checkpoint()

    def save(self, offsets: Mapping[str, int]) -> bool:
        """Write each task's changed units, partials and offsets in one MULTI/EXEC."""
        for task, state in self.tasks.items():
            self._offsets[task] = offsets_of(offsets, task)
            pipe = self._redis.pipeline(transaction=True)
            if state.dirty_units:
                pipe.hset(
                    self._keys.units(self._group, task),
                    mapping={u: json.dumps(state.units[u].to_json()) for u in state.dirty_units},
                )
            pipe.set(
                self._keys.checkpoint(self._group, task),
                json.dumps(
                    {
                        "offsets": self._offsets.get(task, {}),
                        "experiments": {e: p.to_dict() for e, p in state.experiments.items()},
                    }
                ),
            )
            for e in state.dirty_experiments:
                pipe.hset(
                    self._keys.partials(e),
                    f"{self._group}:{task}",
                    json.dumps(state.experiments[e].to_dict()),
                )
            pipe.execute()
            state.dirty_units.clear()
            state.dirty_experiments.clear()
        return True

    def restore(self, partitions: Sequence[int]) -> dict[str, int]:
        """Every assignment: each task's state and offsets from its checkpoint."""
        self.tasks, self._offsets = {}, {}
        offsets: dict[str, int] = {}
        for p in partitions:
            self.tasks[p], self._offsets[p] = self._load(p)
            for topic in (self._topics.exposures, self._topics.outcomes):
                key = offset_key(topic, p)
                offsets[key] = self._offsets[p].get(key, OFFSET_BEGINNING)
        log.info("tasks_assigned", tasks=sorted(self.tasks))
        return offsets

    def release(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.tasks.pop(p, None)
            self._offsets.pop(p, None)

    # -- loop ------------------------------------------------------------------------------
    def handle(self, received: Received[Event]) -> None:
        state = self.tasks.get(received.partition)
        if state is None:  # revoked meanwhile
            return
        _, notes = bk.handle(received.event, state)
        for note in notes:
            self.metrics.events.labels(note).inc()

    def tick(self) -> None:
        """Every ``analysis_interval``: checkpoint, then analyse the owned experiments."""
        now = time.monotonic()
        if self.tasks and now - self._last_analysis >= self._analysis_interval:
            self.checkpoint()
            self.analyze_all()
            self._last_analysis = now

    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        self.redis_guard.stop = stop
        processed = self.runtime.run(stop, idle_exit_seconds=idle_exit_seconds)
        log.info("experiments_stopped", processed=processed)
        return processed

    # -- analysis ---------------------------------------------------------------------------
    def merged(self, experiment_id: str) -> bk.ExperimentPartial:
        return self.registry.merged_partial(experiment_id, self._group)

    def partitions(self) -> int:
        """Partition count of the exposures topic (read once from the broker)."""
        if self._partitions is None:
            try:
                meta = self._raw.list_topics(self._topics.exposures, timeout=10)
            except KafkaException as exc:
                raise DependencyError(f"no metadata of {self._topics.exposures!r}: {exc}") from exc
            topic = meta.topics.get(self._topics.exposures)
            count = len(topic.partitions) if topic is not None else 0
            if count == 0:
                raise DependencyError(f"topic {self._topics.exposures!r} has no partitions")
            self._partitions = count
        return self._partitions

    def owns(self, experiment_id: str) -> bool:
        """True when this worker is the analyst of ``experiment_id`` (see module doc)."""
        return analysis_task(experiment_id, self.partitions()) in self.tasks

    def analyze_all(self) -> list[ExperimentAnalysis]:
        """Analyse the running experiments this worker owns."""
        out = []
        for spec in self.registry.all("running"):
            try:
                owned = self.owns(spec.experiment_id)
            except DependencyError as exc:  # the brokers: try again at the next interval
                log.warning("analysis_postponed", error=str(exc))
                break
            if not owned:
                continue
            try:
                out.append(self.analyze_one(spec))
            except Exception:  # one experiment's failure never stops the others
                log.exception("analysis_failed", experiment_id=spec.experiment_id)
        self._producer.flush(10)
        return out

    def analyze_one(self, spec: ExperimentSpec) -> ExperimentAnalysis:
        now = self._clock()
        key = self._keys.sequential(spec.experiment_id)
        running = self.registry.running_p(spec.experiment_id)
        partial = self.merged(spec.experiment_id)
        analysis, new_p = analyze(
            spec,
            partial,
            history=self.registry.history(spec.experiment_id),
            running_p=running,
            analysis_id=uuid.uuid4().hex,
            now=now,
        )
        if new_p:
            self._redis.hset(key, mapping={k: repr(v) for k, v in new_p.items()})
        self._producer.produce(
            self._topics.experiment_analyses, key=spec.model.encode(), value=encode_event(analysis)
        )
        self.metrics.observe(analysis)
        self.analyses.append(analysis)
        log.info(
            "experiment_analyzed",
            experiment_id=spec.experiment_id,
            model=spec.model,
            recommendation=analysis.recommendation,
            winner=analysis.winner,
            srm=analysis.srm_detected,
            units=analysis.total_units,
        )
        self._allocate(spec, partial, now)
        return analysis

    def _allocate(self, spec: ExperimentSpec, partial: bk.ExperimentPartial, now: datetime) -> None:
        current = self.registry.current_weights(spec)
        for arm, w in current.items():
            self.metrics.weight.labels(spec.experiment_id, spec.model, arm).set(w)
        if spec.allocation == "bandit":
            bkey = self._keys.bandit(spec.experiment_id)
            last_raw: Any = self._redis.hget(bkey, "at")
            last = datetime.fromisoformat(last_raw.decode()) if last_raw else None
            upd = bandit_update(
                spec, partial, current=current, last_update=last, now=now, rng=self._rng
            )
            if upd is None:
                return
            self.registry.set_split(
                spec,
                upd.weights,
                actor=SERVICE,
                reason=f"thompson sampling p(best)={upd.prob_best}",
            )
            self._redis.hset(
                bkey, mapping={"at": now.isoformat(), "weights": json.dumps(upd.weights)}
            )
        elif spec.ramp:
            want = ramp_split(spec, now)
            if any(abs(want[a] - current.get(a, 0.0)) > 1e-9 for a in spec.arms):
                self.registry.set_split(spec, want, actor=SERVICE, reason="ramp step")
