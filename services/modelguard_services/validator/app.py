"""The validator loop, separated from process start-up so tests can run it in a thread.

The validator runs on the shared partitioned runtime (``modelguard.adapters.partitioned``,
ADR 0010), like drift, experiments and metrics: the runtime owns the consumer (manual
commits, range assignor), the dead-lettering of invalid records, the per-message error
boundary (an event whose counting raises is dead-lettered with stage ``process``) and the
reconnection after a broker outage (``modelguard_dependency_up{dependency="kafka"}``).

The validator keeps no state of its own besides its counters, so its checkpoint *is* the
group's committed offsets: every ``validator_commit_interval_s`` the runtime flushes the
dead letters and then :meth:`ValidatorService.save` commits the consumer's position
synchronously (a failed commit is retried at the next checkpoint). On every assignment
(start, rebalance, a session lost in an outage) the runtime resumes at those committed
offsets. At-least-once: after a crash or a lost session, only what was handled since the
last successful commit is read again (counted once more by the counters, and visible in
``modelguard_validated_duplicates_total`` while the ids are remembered); nothing before
it is, and nothing is skipped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog
from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import PartitionedRuntime, parse_offset_key
from modelguard.adapters.prometheus import counter
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import telemetry
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.metrics.aggregate import REGRESSION_CLASS, class_key, tracked_class
from modelguard_services.runtime import partitioned_runtime
from modelguard_services.validator.settings import ValidatorSettings

SERVICE = "validator"
#: Records per poll (as before the runtime).
BATCH = 500
log = structlog.get_logger("modelguard.validator")


class PredictionCounters:
    """Valid predictions and failed requests the validator saw, per model version.

    Named ``modelguard_validated_*`` because ``model_predictions_total`` and
    ``model_prediction_errors_total`` belong to the metrics processor: one owner per
    series name, so a plain ``sum()`` over all jobs never counts a prediction twice.

    A prediction id seen among the last ``dedup_ids`` is counted once (repeats go to
    ``modelguard_validated_duplicates_total``); predicted classes follow the metrics
    processor's rules (``class_key``; at most ``MAX_TRACKED_CLASSES`` per version, the
    rest as ``__other__``; regression as an empty class).
    """

    def __init__(self, registry: CollectorRegistry, dedup_ids: int = 100_000) -> None:
        self.predictions = counter(telemetry.MODELGUARD_VALIDATED_PREDICTIONS, registry)
        self.errors = counter(telemetry.MODELGUARD_VALIDATED_PREDICTION_ERRORS, registry)
        self.duplicates = counter(telemetry.MODELGUARD_VALIDATED_DUPLICATES, registry)
        self._dedup_ids = dedup_ids
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._classes: dict[tuple[str, str], dict[str, int]] = {}

    def observe(self, event: PredictionLogged) -> None:
        pid = event.prediction_id
        if pid in self._seen:
            self._seen.move_to_end(pid)
            self.duplicates.inc()
            return
        if self._dedup_ids:
            self._seen[pid] = None
            if len(self._seen) > self._dedup_ids:
                self._seen.popitem(last=False)
        if event.error_type is not None:
            self.errors.labels(event.model, event.version, event.error_type).inc()
            return
        key = class_key(event.prediction) if event.task == "classification" else REGRESSION_CLASS
        classes = self._classes.setdefault((event.model, event.version), {})
        predicted = tracked_class(classes, key)
        classes[predicted] = classes.get(predicted, 0) + 1
        self.predictions.labels(event.model, event.version, predicted).inc()


class ValidatorService:
    """Consume -> validate -> count, until ``stop`` is set (see the module docstring)."""

    def __init__(
        self,
        settings: CommonSettings,
        registry: CollectorRegistry,
        *,
        group_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        commit_interval: float | None = None,
    ) -> None:
        """``group_id`` defaults to the settings' (``ValidatorSettings.group_id``),
        ``commit_interval`` to ``validator_commit_interval_s``."""
        vs = (
            settings
            if isinstance(settings, ValidatorSettings)
            else ValidatorSettings.model_validate(settings.model_dump())
        )
        self.group_id = group_id or vs.group_id()
        self.runtime: PartitionedRuntime[PredictionLogged] = partitioned_runtime(
            settings,
            registry,
            SERVICE,
            self.group_id,
            {settings.topics.predictions: PredictionLogged},
            checkpoint_interval=commit_interval or vs.validator_commit_interval_s,
            clock=clock,
            batch=BATCH,
        )
        self._counters = PredictionCounters(registry, vs.validator_dedup_ids)
        #: offsets (``topic:partition`` -> next to read) of the last successful commit
        self.committed: dict[str, int] = {}
        self.commits = 0
        self.runtime.attach(self)

    @property
    def processed(self) -> int:
        """Valid events handled (re-reads included)."""
        return self.runtime.processed

    # -- runtime hooks -----------------------------------------------------------------
    def restore(self, partitions: Sequence[int]) -> dict[str, int]:
        """No state of its own: resume every partition at the group's committed offset."""
        return {}

    def release(self, partitions: Sequence[int]) -> None:
        """Nothing per partition to forget (the counters are the process's)."""

    def handle(self, received: Received[PredictionLogged]) -> None:
        self._counters.observe(received.event)

    def save(self, offsets: Mapping[str, int]) -> bool:
        """Commit ``offsets`` (the dead letters before them are delivered already) and
        wait for the broker's answer; False (retried at the next checkpoint) when the
        commit failed, e.g. while the group coordinator is unreachable."""
        commit = [TopicPartition(*parse_offset_key(k), v) for k, v in offsets.items() if v >= 0]
        if not commit:
            return True
        try:
            result = self.runtime.consumer.commit(offsets=commit, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit_failed", service=SERVICE, error=str(exc))
            return False
        failed = [tp for tp in result or [] if tp.error is not None]
        if failed:
            log.warning(
                "commit_failed",
                service=SERVICE,
                error=str(failed[0].error),
                partitions=[f"{tp.topic}:{tp.partition}" for tp in failed],
            )
            return False
        self.committed.update(offsets)
        self.commits += 1
        return True

    def tick(self) -> None:
        """No periodic work."""

    def checkpoint(self) -> bool:
        """Deliver the dead letters, then commit the offsets (nothing when unchanged)."""
        return self.runtime.checkpoint()

    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Process until ``stop`` (or ``idle_exit_seconds`` without messages); returns the
        number of valid events processed."""
        processed = self.runtime.run(stop, idle_exit_seconds=idle_exit_seconds)
        log.info("validator_stopped", processed=processed, commits=self.commits)
        return processed
