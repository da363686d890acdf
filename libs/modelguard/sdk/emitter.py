"""The model-server SDK: publish predictions, labels and exposures to Kafka.

Usage in a model server::

    from modelguard.sdk import EventSDK

    sdk = EventSDK("127.0.0.1:19092", registry=prometheus_client.REGISTRY)
    with sdk.timer("fraud", "v2") as timer:
        with timer.stage("inference"):
            y, proba = model.predict(features)
    pid = sdk.emit_prediction(model="fraud", version="v2", unit_id=user_id,
                              features=features, prediction=y,
                              probabilities={"0": 1 - proba, "1": proba}, timer=timer)
    ...                                    # later, when the truth is known
    sdk.emit_label(prediction_id=pid, label=1, model="fraud")
    sdk.close()                            # flushes (bounded) on shutdown

Guarantees: the caller is never blocked and never sees a delivery error. Events are
validated (invalid arguments raise :class:`InvalidEventError` naming the field) and
queued in librdkafka's bounded buffer (``max_buffer`` messages) of an idempotent
producer; a full buffer drops the event, counted in ``modelguard_sdk_dropped_total``
(``reason="buffer_full"``), and so does an event the producer refuses outright (e.g.
after a fatal idempotence error; ``reason="produce_error"``).
Delivery failures (e.g. a broker down longer than ``message_timeout_s``) are counted in
``modelguard_sdk_delivery_failures_total`` and logged, never raised. While the broker is
down, events wait in the buffer and are delivered when it is back.
"""

from __future__ import annotations

import functools
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, ParamSpec, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from modelguard.adapters.clock import utc_now
from modelguard.adapters.kafka import PRODUCER_DEFAULTS, KafkaConnection, client_config
from modelguard.adapters.prometheus import counter_snapshot, gauge_snapshot
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.base import Event
from modelguard.contracts.codec import encode_event
from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.telemetry import (
    LATENCY_STAGES,
    MODELGUARD_SDK_BUFFERED_MESSAGES,
    MODELGUARD_SDK_DELIVERY_FAILURES,
    MODELGUARD_SDK_DROPPED,
    MODELGUARD_SDK_EVENTS,
    MODELGUARD_SDK_INVALID_CALLS,
)
from modelguard.contracts.topics import Topics
from modelguard.sdk.encode import InvalidEventError, PredictionEncoder, bounded
from modelguard.sdk.latency import LatencyTimer, Stage, StageHistogram
from modelguard.sdk.safelog import safe_logger

log = safe_logger("modelguard.sdk")
P = ParamSpec("P")
R = TypeVar("R")


def producer_settings(
    bootstrap: KafkaConnection,
    *,
    max_buffer: int,
    message_timeout_s: float,
    producer_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The librdkafka settings of the SDK's producer, without its callbacks (one home:
    the SDK and the benchmark's raw-``produce()`` baseline are built from it)."""
    return client_config(
        bootstrap,
        **PRODUCER_DEFAULTS,
        **{
            "queue.buffering.max.messages": max_buffer,
            "message.timeout.ms": int(message_timeout_s * 1000),
            "delivery.report.only.error": True,
        },
        **dict(producer_config or {}),
    )


class _Collector(Collector):
    """Hot-path counters are plain ints on the SDK; this exposes them."""

    def __init__(self, sdk: EventSDK) -> None:
        self._sdk = sdk

    def collect(self) -> Iterator[Metric]:
        s = self._sdk
        queued = counter_snapshot(MODELGUARD_SDK_EVENTS)
        for event_type, n in sorted(s.queued.items()):
            queued.add_metric([event_type], n)
        yield queued
        dropped = counter_snapshot(MODELGUARD_SDK_DROPPED)
        for event_type, n in sorted(s.dropped.items()):
            refused = s.produce_errors.get(event_type, 0)
            dropped.add_metric([event_type, "buffer_full"], n - refused)
            if refused:
                dropped.add_metric([event_type, "produce_error"], refused)
        yield dropped
        failed = counter_snapshot(MODELGUARD_SDK_DELIVERY_FAILURES)
        for (topic, error), n in sorted(s.delivery_failures.items()):
            failed.add_metric([topic, error], n)
        yield failed
        invalid = counter_snapshot(MODELGUARD_SDK_INVALID_CALLS)
        for event_type, n in sorted(s.invalid.items()):
            invalid.add_metric([event_type], n)
        yield invalid
        buffered = gauge_snapshot(MODELGUARD_SDK_BUFFERED_MESSAGES)
        buffered.add_metric([], s.buffered)
        yield buffered


class EventSDK:
    """Asynchronous, bounded, idempotent publisher of modelguard events.

    ``registry`` receives the SDK's metrics and ``modelguard_sdk_inference_duration_seconds``
    (a private registry when None, see :attr:`registry`). ``clock`` gives default event
    times. ``producer_config`` adds librdkafka settings.
    """

    def __init__(
        self,
        bootstrap: KafkaConnection,
        *,
        topics: Topics | None = None,
        registry: CollectorRegistry | None = None,
        max_buffer: int = 100_000,
        message_timeout_s: float = 300.0,
        clock: Callable[[], datetime] = utc_now,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(bootstrap, Mapping):
            if not bootstrap.get("bootstrap.servers"):
                raise ValueError("the Kafka connection settings have no 'bootstrap.servers'")
        elif not isinstance(bootstrap, str) or not bootstrap:
            raise ValueError(f"bootstrap must be a non-empty 'host:port' string, got {bootstrap!r}")
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be an int >= 1, got {max_buffer!r}")
        if not message_timeout_s > 0:
            raise ValueError(f"message_timeout_s must be > 0, got {message_timeout_s!r}")
        self.topics = topics or Topics()
        # the default clock called as datetime.now(UTC) directly: the same value, one
        # Python frame less per event
        self._clock = functools.partial(datetime.now, UTC) if clock is utc_now else clock
        self._encoder = PredictionEncoder()
        # Built directly (not make_producer): callback keys contain underscores.
        self._producer = Producer(
            {
                **producer_settings(
                    bootstrap,
                    max_buffer=max_buffer,
                    message_timeout_s=message_timeout_s,
                    producer_config=producer_config,
                ),
                "on_delivery": self._on_delivery,
                "error_cb": self._on_error,
            }
        )
        # Hot-path attributes, looked up once (emit_prediction runs per request).
        self._produce = self._producer.produce
        self._encode_prediction = self._encoder.encode_prediction
        self._predictions_topic = self.topics.predictions
        #: Set by close() (a plain bool: cheaper to test per event than an Event).
        self._is_closed = False
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        self._ids = itertools.count()
        self.queued: dict[str, int] = {"prediction": 0, "label": 0, "exposure": 0, "outcome": 0}
        #: events dropped before sending, by event type (all reasons)
        self.dropped: dict[str, int] = {}
        #: of those, refused by the producer itself (e.g. a fatal idempotence error)
        self.produce_errors: dict[str, int] = {}
        self.invalid: dict[str, int] = {}
        self.delivery_failures: dict[tuple[str, str], int] = {}
        self._headers: dict[str, list[tuple[str, str | bytes | None]]] = {
            name: [("event_type", model.schema_name.encode())]
            for name, model in (
                ("prediction", PredictionLogged),
                ("label", LabelObserved),
                ("exposure", ExposureLogged),
                ("outcome", OutcomeObserved),
            )
        }
        self._prediction_headers = self._headers["prediction"]
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(_Collector(self))
        #: ``modelguard_sdk_inference_duration_seconds`` of the stages timed here.
        self.inference_duration = StageHistogram(self.registry)
        self._observers: dict[tuple[str, str], Callable[[Stage, float], None]] = {}
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="modelguard-sdk", daemon=True)
        self._poller.start()

    @classmethod
    def from_settings(
        cls, settings: CommonSettings, registry: CollectorRegistry | None = None, **kwargs: Any
    ) -> EventSDK:
        """An SDK for the broker (with its security settings) and topic prefix of
        ``settings``."""
        return cls(
            settings.kafka_connection(),
            topics=settings.topics,
            registry=registry,
            **kwargs,
        )

    # -- events ----------------------------------------------------------------------------
    def new_prediction_id(self) -> str:
        """A process-unique id (random prefix + counter), cheaper than a uuid4."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def emit_prediction(
        self,
        *,
        model: str,
        version: str,
        prediction: Any = None,
        unit_id: str | None = None,
        prediction_id: str | None = None,
        features: Mapping[str, Any] | None = None,
        probabilities: Mapping[str, float] | None = None,
        score: float | None = None,
        latency_ms: float | None = None,
        stage_latency_ms: Mapping[str, float] | None = None,
        timer: LatencyTimer | None = None,
        error_type: str | None = None,
        experiment_id: str | None = None,
        task: str = "classification",
        event_time: datetime | None = None,
    ) -> str:
        """Publish a :class:`PredictionLogged`; returns its ``prediction_id``.

        ``unit_id`` defaults to the prediction id; latency comes from ``timer`` or
        ``latency_ms`` (one is required); ``event_time`` defaults to now.
        """
        if prediction_id is None:
            prediction_id = f"{self._id_prefix}{next(self._ids):x}"
        if timer is not None:
            latency_ms = timer.total_ms
            if stage_latency_ms is None and timer.stages_ms:
                # the timer's own dict (names checked by timer.stage), encoded right away
                stage_latency_ms = timer.stages_ms  # type: ignore[assignment]
        elif latency_ms is None:
            self._count_invalid("prediction")
            raise InvalidEventError("prediction: latency_ms (or timer) is required")
        try:
            key, value = self._encode_prediction(
                prediction_id,
                model,
                version,
                prediction_id if unit_id is None else unit_id,
                self._clock() if event_time is None else event_time,
                features,
                prediction,
                probabilities,
                score,
                latency_ms,
                stage_latency_ms,
                error_type,
                experiment_id,
                task,
            )
        except InvalidEventError:
            self._count_invalid("prediction")
            raise
        if self._is_closed:
            self._drop_closed("prediction")
            return prediction_id
        try:
            self._produce(self._predictions_topic, value, key, headers=self._prediction_headers)
        except BufferError:
            self._drop_full("prediction")
            return prediction_id
        except KafkaException as exc:  # never into the request path (module docstring)
            self._drop_error("prediction", exc)
            return prediction_id
        self.queued["prediction"] += 1
        return prediction_id

    def emit_label(
        self,
        *,
        prediction_id: str,
        label: Any,
        model: str | None = None,
        event_time: datetime | None = None,
    ) -> None:
        """Publish the ground truth of a prediction (:class:`LabelObserved`)."""
        try:
            key, value = self._encoder.encode_label(
                prediction_id=prediction_id,
                label=label,
                model=model,
                event_time=self._clock() if event_time is None else event_time,
            )
        except InvalidEventError:
            self._count_invalid("label")
            raise
        self._send(self.topics.labels, key, value, "label")

    def emit_exposure(self, event: ExposureLogged) -> None:
        """Publish an exposure (usable as ``RoutingClient(exposures=sdk.emit_exposure)``)."""
        self.emit_event(event)

    def emit_event(self, event: Event) -> None:
        """Publish an already-built prediction, label, exposure or outcome event."""
        if isinstance(event, PredictionLogged):
            topic, key, event_type = self.topics.predictions, event.prediction_id, "prediction"
        elif isinstance(event, LabelObserved):
            topic, key, event_type = self.topics.labels, event.prediction_id, "label"
        elif isinstance(event, ExposureLogged):
            topic, key, event_type = self.topics.exposures, event.unit_id, "exposure"
        elif isinstance(event, OutcomeObserved):
            topic, key, event_type = self.topics.outcomes, event.unit_id, "outcome"
        else:
            raise TypeError(
                f"event must be a PredictionLogged, LabelObserved, ExposureLogged or "
                f"OutcomeObserved, got {type(event).__name__}"
            )
        try:
            value = bounded(encode_event(event), event_type)
        except InvalidEventError:
            self._count_invalid(event_type)
            raise
        self._send(topic, key.encode(), value, event_type)

    def _send(self, topic: str, key: bytes, value: bytes, event_type: str) -> None:
        if self._is_closed:
            self._drop_closed(event_type)
            return
        try:
            self._produce(topic, value, key, headers=self._headers[event_type])
        except BufferError:
            self._drop_full(event_type)
            return
        except KafkaException as exc:
            self._drop_error(event_type, exc)
            return
        self.queued[event_type] += 1

    def _drop_closed(self, event_type: str) -> None:
        n = self.dropped.get(event_type, 0) + 1
        self.dropped[event_type] = n
        if n == 1:
            log.warning("sdk_closed_event_dropped", event_type=event_type)

    def _drop_full(self, event_type: str) -> None:
        n = self.dropped.get(event_type, 0) + 1
        self.dropped[event_type] = n
        if n == 1 or n % 10_000 == 0:
            log.warning("sdk_buffer_full_event_dropped", event_type=event_type, dropped=n)

    def _drop_error(self, event_type: str, error: KafkaException) -> None:
        self.dropped[event_type] = self.dropped.get(event_type, 0) + 1
        n = self.produce_errors.get(event_type, 0) + 1
        self.produce_errors[event_type] = n
        if n == 1 or n % 10_000 == 0:
            log.error("sdk_produce_failed_event_dropped", event_type=event_type, error=str(error))

    def _count_invalid(self, event_type: str) -> None:
        self.invalid[event_type] = self.invalid.get(event_type, 0) + 1

    # -- latency ------------------------------------------------------------------------------
    def timer(self, model: str, version: str) -> LatencyTimer:
        """A :class:`LatencyTimer` whose stages feed
        ``modelguard_sdk_inference_duration_seconds``."""
        observe = self._observers.get((model, version))
        if observe is None:
            observe = self._observer(model, version)
        return LatencyTimer(observe)

    def _observer(self, model: str, version: str) -> Callable[[Stage, float], None]:
        if not (isinstance(model, str) and isinstance(version, str)):
            raise TypeError(f"model and version must be strings, got {model!r}, {version!r}")
        observe = self.inference_duration.observer(model, version)
        self._observers[(model, version)] = observe
        return observe

    def timed(
        self, stage: Stage, model: str, version: str
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator timing every call of a function as ``stage`` of ``model/version``."""
        if stage not in LATENCY_STAGES:
            raise ValueError(f"stage must be one of {', '.join(LATENCY_STAGES)}; got {stage!r}")
        observe = self._observer(model, version)

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                t0 = perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    observe(stage, perf_counter() - t0)

            return wrapper

        return decorate

    # -- delivery -----------------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        key = (msg.topic() or "", err.name())
        n = self.delivery_failures.get(key, 0) + 1
        self.delivery_failures[key] = n
        if n == 1 or n % 10_000 == 0:
            log.error("sdk_delivery_failed", topic=key[0], error=str(err), failures=n)

    def _on_error(self, err: KafkaError) -> None:
        log.warning("sdk_kafka_error", error=str(err), fatal=err.fatal())

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # a failing callback must not stop delivery reports
                log.exception("sdk_poll_failed")

    @property
    def buffered(self) -> int:
        """Messages queued or in flight (0 once closed)."""
        return 0 if self._closed.is_set() else len(self._producer)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` seconds for delivery; returns messages still queued."""
        return 0 if self._closed.is_set() else int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> int:
        """Flush (bounded by ``timeout``), then release the producer; returns messages
        left undelivered (dropped and logged). Idempotent; later emits count as dropped.

        The librdkafka handle is closed here rather than at garbage collection, so no
        connection threads outlive the SDK (and none log once the broker is gone).
        """
        if self._closed.is_set():
            return 0
        left = self.flush(timeout)
        self._is_closed = True
        self._closed.set()
        self._poller.join(timeout=2)
        if left:
            log.error("sdk_closed_with_undelivered_events", undelivered=left)
            self._producer.purge()  # Producer.close() would otherwise flush without bound
        self._producer.close()
        return left

    def __enter__(self) -> EventSDK:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
