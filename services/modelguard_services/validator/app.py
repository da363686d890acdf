"""The validator loop, separated from process start-up so tests can run it in a thread."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.dead_letter import DeadLetterPublisher
from modelguard.adapters.ingest import IngestMetrics, ValidatingConsumer
from modelguard.adapters.kafka import make_consumer, make_producer
from modelguard.adapters.prometheus import counter
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import telemetry
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.metrics.aggregate import REGRESSION_CLASS, class_key, tracked_class
from modelguard_services.validator.settings import ValidatorSettings

SERVICE = "validator"
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
    """Consume -> validate -> count, until ``stop`` is set."""

    def __init__(
        self,
        settings: CommonSettings,
        registry: CollectorRegistry,
        *,
        group_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``group_id`` defaults to the settings' (``ValidatorSettings.group_id``)."""
        topics = settings.topics
        vs = (
            settings
            if isinstance(settings, ValidatorSettings)
            else ValidatorSettings.model_validate(settings.model_dump())
        )
        group_id = group_id or vs.group_id()
        self._producer = make_producer(settings.kafka_connection())
        self._consumer = ValidatingConsumer(
            make_consumer(settings.kafka_connection(), group_id),
            {topics.predictions: PredictionLogged},
            DeadLetterPublisher(self._producer, topics.dead_letter, stage=SERVICE),
            IngestMetrics(registry, SERVICE),
            clock,
        )
        self._counters = PredictionCounters(registry, vs.validator_dedup_ids)
        self.processed = 0

    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int:
        """Process until ``stop`` (or ``idle_exit_seconds`` without messages); returns the
        number of valid events processed."""
        last_seen = time.monotonic()
        try:
            while not stop.is_set():
                batch = self._consumer.poll(max_messages=500, timeout=0.2)
                for received in batch:
                    self._counters.observe(received.event)
                self._consumer.done(batch)
                self._producer.poll(0)
                self.processed += len(batch)
                if batch:
                    last_seen = time.monotonic()
                elif (
                    idle_exit_seconds is not None
                    and time.monotonic() - last_seen > idle_exit_seconds
                ):
                    break
        finally:
            self._producer.flush(10)
            self._consumer.close()
        log.info("validator_stopped", processed=self.processed)
        return self.processed
