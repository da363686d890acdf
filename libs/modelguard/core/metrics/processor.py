"""The metrics processor: delayed-label join and windowed metrics, as a pure reducer.

One :class:`PartitionState` holds everything for one partition of the co-partitioned
``predictions`` and ``labels`` topics (ADR 0002); :func:`handle` folds one event into it
and returns the windows it closed. :func:`run` is the in-memory driver (replay, tests,
offline recomputation); the service runs the same code over Kafka and checkpoints the
state (:meth:`PartitionState.to_json`) to a compacted changelog (ADR 0007).

Fates of events (all counted, none silently dropped):

* prediction: counted in the event-time windows of its ``event_time``, then pending
  until its label joins or ``label_ttl_s`` passes the watermark (``n_expired``, which
  lowers ``label_coverage``). A failed prediction (``error_type``) is never pending.
* label: joins its prediction when ``t_pred - orphan_grace_s < t_label < t_pred +
  label_ttl_s`` (event times only, ADR 0011); the pair counts in the windows of
  ``max(prediction time, label time)`` and in the last-N window. A label whose
  prediction is not seen yet waits ``orphan_grace_s``, then is an orphan. A label at or
  after its prediction's TTL is counted as ``labels_after_ttl`` (the prediction as
  expired), whether or not the expiry sweep has run yet.
* a second prediction or label with a known id: ``duplicates`` (dedup by prediction id,
  remembered until ``label_ttl_s + orphan_grace_s`` after the prediction's event time;
  an event at or after that time is treated as new, swept or not).
* an event for an already closed window: ``late``, counted in no window (the coarser
  windows are merged from the finest one as it closes, so all share its fate).
* an event dated more than ``max_future_s`` after its arrival (broker) time, when the
  caller passes one: its event time is clamped to ``arrival + max_future_s`` and it is
  counted (``clamped``), so one event dated 9999 cannot move the watermark to 9999.
* memory is bounded (``max_pending``, ``max_orphans``, ``max_remembered`` per
  partition): beyond a bound the oldest entries are evicted and counted (``overflow``):
  a pending prediction is expired early, a waiting label becomes an orphan, a
  remembered id is forgotten (ADR 0011 gives the sizing).

Join, expiry and dedup decisions depend on event times only (the sweep that expires
and forgets is garbage collection, never a decision): so when each input is in order
within ``allowed_lateness_s`` (and no input lags the other by more than
``max_input_lag_s``), the closed windows are the same for every interleaving and every
checkpoint/restore point (a property test checks this).

Watermark: per input (predictions, labels) the max event time minus
``allowed_lateness_s``; the partition's watermark is the smaller of the two, except
that neither input may hold it back by more than ``max_input_lag_s`` (an idle or absent
labels stream must not stop windows from closing, it only delays them). It never goes
back. When each stream is in
order within the allowed lateness, the closed windows do not depend on how the two
topics' records interleave, so a replay reproduces them exactly.

State is mutated in place (and returned) for speed; copy it with ``to_json``/
``from_json`` when an independent value is needed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from modelguard.contracts.fastdecode import (
    LabelFields,
    PredictionFields,
    label_fields,
    prediction_fields,
)
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.metrics import baseline as _baseline
from modelguard.core.metrics.aggregate import Aggregate
from modelguard.core.metrics.config import (
    CATCH_UP_ONE_BY_ONE,
    DURATION_BUCKETS_S,
    EVICT_FRACTION,
    STAGES,
    SWEEP_INTERVAL_S,
    Event,
    MetricsConfig,
    VersionKey,
)
from modelguard.core.metrics.join import JoinMixin
from modelguard.core.metrics.state import (
    ClosedWindow,
    Orphan,
    PartitionState,
    Pending,
    VersionState,
    bump,
)

__all__ = [  # the names of the parts stay importable from here (older import paths)
    "CATCH_UP_ONE_BY_ONE",
    "DURATION_BUCKETS_S",
    "EVICT_FRACTION",
    "STAGES",
    "SWEEP_INTERVAL_S",
    "ClosedWindow",
    "Event",
    "MetricsConfig",
    "MetricsProcessor",
    "Orphan",
    "PartitionState",
    "Pending",
    "VersionKey",
    "VersionState",
    "run",
]


class MetricsProcessor(JoinMixin):
    """``handle(event, state) -> (state, outputs)`` with a fixed :class:`MetricsConfig`:
    the join (:mod:`.join`) and the windows (:mod:`.windowing`) over one
    :class:`PartitionState` (:mod:`.state`), compared with a baseline (:mod:`.baseline`)."""

    # -- entry points ----------------------------------------------------------------
    def handle(
        self, event: Event, state: PartitionState, arrival: float | None = None
    ) -> tuple[PartitionState, list[ClosedWindow]]:
        """Fold one event into ``state``; ``arrival`` is its arrival time (Unix seconds,
        e.g. the broker timestamp), which bounds its event time (``max_future_s``)."""
        out: list[ClosedWindow] = []
        if isinstance(event, PredictionLogged):
            self.prediction(prediction_fields(event), state, arrival, out)
        else:
            self.label(label_fields(event), state, arrival, out)
        self.settle()
        return state, out

    def prediction(
        self,
        f: PredictionFields,
        state: PartitionState,
        arrival: float | None,
        out: list[ClosedWindow],
    ) -> None:
        """:meth:`handle` for a prediction given as its fields
        (:func:`modelguard.contracts.fastdecode.decode_prediction_fields`); the windows
        it closes are appended to ``out``. Its contribution to its open window may be
        deferred: call :meth:`settle` at the end of a batch, before reading the state."""
        t = self._clamp(f[3], arrival, state, "prediction")
        before = state.max_prediction_time
        self._prediction(f, t, state, out)
        if state.max_prediction_time != before:
            self._advance(state, out)  # the watermark only moves when an input's max does

    def label(
        self,
        f: LabelFields,
        state: PartitionState,
        arrival: float | None,
        out: list[ClosedWindow],
    ) -> None:
        """:meth:`handle` for a label given as its fields
        (:func:`modelguard.contracts.fastdecode.decode_label_fields`)."""
        t = self._clamp(f[3], arrival, state, "label")
        before = state.max_label_time
        self._label(f, t, state, out)
        if state.max_label_time != before:
            self._advance(state, out)

    def _clamp(self, t: float, arrival: float | None, state: PartitionState, kind: str) -> float:
        """The event time ``t`` of a ``kind`` event, at most ``max_future_s`` after its
        ``arrival`` (a clamped time is counted in ``state.clamped``)."""
        if arrival is not None and t > arrival + self.config.max_future_s:
            bump(state.clamped, kind)
            return arrival + self.config.max_future_s
        return t

    # -- baseline comparison (modelguard.core.metrics.baseline) ----------------------
    def baseline(self, state: PartitionState, model: str) -> float | None:
        return _baseline.baseline(self.config, state, model)

    def baseline_comparison(
        self, state: PartitionState, model: str, accuracy: float, n: int
    ) -> tuple[float, float, bool] | None:
        """(baseline, drop in percent of baseline, accuracy degraded flag), or None
        (:func:`modelguard.core.metrics.baseline.baseline_comparison`)."""
        return _baseline.baseline_comparison(self.config, state, model, accuracy, n)

    # -- live view (for gauges) ------------------------------------------------------
    def live(self, states: Iterable[PartitionState], model: str, version: str) -> dict[str, float]:
        """Metrics of the last-N windows of ``model``/``version`` merged over ``states``,
        with the baseline comparison (the view exposed as gauges)."""
        agg = Aggregate()
        first: PartitionState | None = None
        for st in states:
            vs = st.versions.get((model, version))
            if vs is not None:
                agg.merge(vs.recent_aggregate())
                first = first or st
        metrics = agg.metrics()
        if first is not None:
            _baseline.add_comparison(self.config, first, model, metrics)
        return metrics


def run(
    events: Iterable[Event],
    config: MetricsConfig | None = None,
    *,
    flush: bool = True,
    state: PartitionState | None = None,
    arrivals: Iterable[float | None] | None = None,
) -> tuple[PartitionState, list[ClosedWindow]]:
    """In-memory driver: fold ``events`` (one partition's order) and return the final
    state and every closed window; ``flush`` closes the windows still open at the end.
    ``arrivals`` gives each event's arrival time (Unix seconds; see ``handle``)."""
    processor = MetricsProcessor(config)
    st = state if state is not None else PartitionState()
    out: list[ClosedWindow] = []
    times = iter(arrivals) if arrivals is not None else itertools.repeat(None)
    for e, arrival in zip(events, times, strict=False):
        st, closed = processor.handle(e, st, arrival)
        out.extend(closed)
    if flush:
        out.extend(processor.flush(st))
    return st, out
