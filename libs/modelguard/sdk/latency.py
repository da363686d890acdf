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

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from modelguard.contracts.telemetry import DURATION_BUCKETS, LATENCY_STAGES, Stage

STAGES = LATENCY_STAGES
__all__ = ["DURATION_BUCKETS", "STAGES", "LatencyTimer", "Stage"]


class LatencyTimer:
    """Measures stages with a monotonic clock; ``observe(stage, seconds)`` is called as
    each stage ends (the SDK passes its histogram)."""

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

    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        """Time one stage (its time accumulates if the stage runs twice)."""
        if name not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {name!r}")
        t0 = self._clock()
        try:
            yield
        finally:
            seconds = self._clock() - t0
            self.stages_ms[name] = self.stages_ms.get(name, 0.0) + seconds * 1000.0
            if self._observe is not None:
                self._observe(name, seconds)

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
        self.stop()
