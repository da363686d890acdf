"""Timing of a request's stages (preprocessing, inference, postprocessing).

>>> timer = LatencyTimer()
>>> with timer.stage("inference"):
...     pass
>>> sorted(timer.stages_ms)
['inference']
>>> timer.total_ms >= timer.stages_ms["inference"] >= 0
True

With the SDK, each finished stage is also observed in the
``modelguard_sdk_inference_duration_seconds`` histogram ``{model_name, model_version,
stage}`` of this model server (the metrics processor exports the fleet-wide
``model_inference_duration_seconds`` from the events, ``stage="total"`` included)::

    with sdk.timer("fraud", "v2") as timer:
        with timer.stage("preprocessing"):
            x = prepare(request)
        with timer.stage("inference"):
            y = model.predict(x)
    sdk.emit_prediction(model="fraud", version="v2", prediction=y, timer=timer, ...)

or as a decorator of one stage: ``@sdk.timed("inference", "fraud", "v2")``.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from modelguard.adapters.prometheus import histogram_snapshot
from modelguard.contracts.telemetry import (
    DURATION_BUCKETS,
    LATENCY_STAGES,
    MODELGUARD_SDK_INFERENCE_DURATION_SECONDS,
    Stage,
)

STAGES = LATENCY_STAGES
__all__ = ["DURATION_BUCKETS", "STAGES", "LatencyTimer", "Stage", "StageHistogram"]


class _StageClock:
    """The context manager of one :meth:`LatencyTimer.stage` (a slotted object: cheaper
    per request than a generator-based context manager)."""

    __slots__ = ("_name", "_t0", "_timer")

    def __init__(self, timer: LatencyTimer, name: Stage) -> None:
        self._timer = timer
        self._name = name
        self._t0 = 0.0

    def __enter__(self) -> None:
        self._t0 = self._timer._clock()

    def __exit__(self, *exc: object) -> None:
        timer = self._timer
        seconds = timer._clock() - self._t0
        stages = timer.stages_ms
        name = self._name
        stages[name] = stages.get(name, 0.0) + seconds * 1000.0
        if timer._observe is not None:
            timer._observe(name, seconds)


class LatencyTimer:
    """Measures stages with a monotonic clock; ``observe(stage, seconds)`` is called as
    each stage ends (the SDK passes its histogram)."""

    __slots__ = ("_clock", "_end", "_observe", "_start", "stages_ms")

    def __init__(
        self,
        observe: Callable[[Stage, float], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._observe = observe
        self._clock = clock
        self._start = clock()
        self._end: float | None = None
        self.stages_ms: dict[Stage, float] = {}

    def stage(self, name: Stage) -> _StageClock:
        """Time one stage (its time accumulates if the stage runs twice)."""
        if name not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {name!r}")
        return _StageClock(self, name)

    def stop(self) -> None:
        """Freeze the total (done automatically when used as a context manager)."""
        if self._end is None:
            self._end = self._clock()

    @property
    def total_ms(self) -> float:
        """Milliseconds since the timer started (until :meth:`stop`)."""
        end = self._end if self._end is not None else self._clock()
        return (end - self._start) * 1000.0

    def __enter__(self) -> LatencyTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._end is None:
            self._end = self._clock()


#: The catalogue's buckets of the SDK's stage histogram (its one home).
_BOUNDS = tuple(float(b) for b in MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.buckets or ())


class _ModelStages:
    """Bucket counts and sums of one model version's stages, under one lock."""

    __slots__ = ("_lock", "counts", "sums")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # one count per bucket bound, plus +Inf; cumulated only when exported
        self.counts: dict[str, list[int]] = {s: [0] * (len(_BOUNDS) + 1) for s in STAGES}
        self.sums: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def observe(self, stage: Stage, seconds: float) -> None:
        i = bisect_left(_BOUNDS, seconds)  # first bound >= seconds: Prometheus' "le"
        with self._lock:
            self.counts[stage][i] += 1
            self.sums[stage] += seconds

    def snapshot(self) -> list[tuple[str, list[int], float]]:
        with self._lock:
            return [(s, list(self.counts[s]), self.sums[s]) for s in STAGES]


class StageHistogram(Collector):
    """``modelguard_sdk_inference_duration_seconds`` (name, labels and buckets from the
    telemetry catalogue), accumulated without prometheus-client's per-observation
    overhead: one bisect and two additions under one lock per model version (every
    observation counted, none sampled); the exposition is built when scraped.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> hist = StageHistogram(registry)
    >>> hist.observer("fraud", "v2")("inference", 0.02)
    >>> text = generate_latest(registry).decode()
    >>> 'le="0.025",model_name="fraud",model_version="v2",stage="inference"} 1.0' in text
    True
    """

    def __init__(self, registry: object | None = None) -> None:
        self._models: dict[tuple[str, str], _ModelStages] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)  # type: ignore[attr-defined]

    def observer(self, model: str, version: str) -> Callable[[Stage, float], None]:
        """``observe(stage, seconds)`` for one model version (created on first use)."""
        key = (model, version)
        stages = self._models.get(key)
        if stages is None:
            with self._lock:
                stages = self._models.setdefault(key, _ModelStages())
        return stages.observe

    def collect(self) -> Iterator[Metric]:
        family = histogram_snapshot(MODELGUARD_SDK_INFERENCE_DURATION_SECONDS)
        for (model, version), stages in sorted(self._models.copy().items()):
            for stage, counts, total in stages.snapshot():
                buckets: list[tuple[str, float]] = []
                cumulative = 0
                for bound, n in zip((*_BOUNDS, float("inf")), counts, strict=True):
                    cumulative += n
                    buckets.append((_le(bound), cumulative))
                family.add_metric([model, version, stage], buckets, total)
        yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
