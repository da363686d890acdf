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

import hashlib
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal, TypeVar

from modelguard.contracts.limits import LIMITS
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.telemetry import DURATION_BUCKETS, LATENCY_STAGES, TOTAL_STAGE
from modelguard.core.metrics.aggregate import (
    REGRESSION_CLASS,
    Aggregate,
    Pair,
    class_key,
    tracked_class,
)
from modelguard.core.metrics.sketch import DEFAULT_ALPHA, FixedHistogram, LogSketch

#: ``model_inference_duration_seconds`` buckets (10 ms to 10 s).
#: Buckets and stages of ``model_inference_duration_seconds`` (one home: the catalogue).
DURATION_BUCKETS_S: tuple[float, ...] = DURATION_BUCKETS
STAGES: tuple[str, ...] = (*LATENCY_STAGES, TOTAL_STAGE)
#: Expiry of pending predictions, orphans and remembered ids runs at most this often
#: (event time); expiring later than due never changes a result (see ``_sweep``).
SWEEP_INTERVAL_S = 1.0
#: Share of a memory bound evicted at once when it is reached (one scan for many entries).
EVICT_FRACTION = 1 / 64
#: A last-N aggregate catches up with at most this many pairs one by one; more are
#: aggregated in one go and merged (:meth:`Aggregate.of_pairs` is cheaper per pair).
CATCH_UP_ONE_BY_ONE = 32

Event = PredictionLogged | LabelObserved
_V = TypeVar("_V")
VersionKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Processor settings (all durations in seconds of event time)."""

    window_lengths_s: tuple[float, ...] = (60.0, 300.0, 3600.0)
    last_n: int = 1000
    label_ttl_s: float = 3600.0
    orphan_grace_s: float = 600.0
    allowed_lateness_s: float = 10.0
    max_input_lag_s: float = 300.0
    #: Declared baseline accuracy per model; absent models take the accuracy of their
    #: first full last-N window as baseline.
    baselines: Mapping[str, float] = field(default_factory=dict)
    #: Accuracy drop (percent of baseline) that, when significant, flags the version as
    #: degraded (``accuracy_degraded``; concept drift proper is the drift processor's).
    drift_drop_percent: float = 10.0
    #: One-sided z score the drop must exceed (2.33: p < 0.01).
    drift_z: float = 2.33
    min_labelled_for_drift: int = 100
    #: Largest lead of an event's time over its arrival (broker) time; an event further
    #: ahead is clamped to ``arrival + max_future_s`` and counted. Keep it at most
    #: ``allowed_lateness_s``: then no clamped event can make an on-time one late.
    max_future_s: float = 5.0
    #: Memory bounds per partition (ADR 0011: size them as rate x (TTL + grace)).
    max_pending: int = 1_000_000
    max_orphans: int = 250_000
    max_remembered: int = 2_000_000


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """One closed window of one model version on one partition (a partial aggregate)."""

    model: str
    version: str
    kind: Literal["tumbling", "count"]
    length_s: float | None
    count: int | None
    start: float
    end: float
    partition: int
    aggregate: Aggregate
    metrics: dict[str, float]

    @property
    def event_id(self) -> str:
        """Deterministic id (model, version, window, start, partition): replays share it."""
        spec = f"{self.kind}:{self.length_s or self.count}"
        raw = f"{self.model}|{self.version}|{spec}|{self.start!r}|{self.partition}"
        return "mw-" + hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class VersionState:
    """Cumulative totals (for counters) and the last-N window of one model version.

    The last-N window is kept as its pairs (``recent``, at most ``last_n``); its
    aggregate is built only when read (:meth:`recent_aggregate`, for the gauges), then
    caught up pair by pair while few pairs moved; a count window is built from the
    pairs in one go. So a label costs an append instead of adding one pair to an
    aggregate and removing another (ADR 0007).
    """

    predicted: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    n_predictions: int = 0
    n_labelled: int = 0
    n_correct: int = 0
    n_expired: int = 0
    durations: dict[str, FixedHistogram] = field(default_factory=dict)
    label_delay_s: LogSketch = field(default_factory=LogSketch)
    recent: deque[Pair] = field(default_factory=deque)
    recent_start: float = math.inf
    since_count_window: int = 0
    count_window_start: float = math.inf
    last_window_accuracy: dict[str, float] = field(default_factory=dict)
    last_window_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # derived from ``recent`` (never serialised): the aggregate as of the last read, the
    # number of pairs appended since and the pairs that left the window since
    _cache: Aggregate | None = field(default=None, init=False, repr=False, compare=False)
    _added: int = field(default=0, init=False, repr=False, compare=False)
    _left: list[Pair] = field(default_factory=list, init=False, repr=False, compare=False)

    def push(self, pair: Pair, last_n: int) -> None:
        """Append a pair to the last-N window (the oldest leaves beyond ``last_n``)."""
        recent = self.recent
        recent.append(pair)
        if self._cache is not None:
            self._added += 1
            if 2 * self._added > last_n:  # rebuilding is now cheaper than catching up
                self._cache = None
                self._added = 0
                self._left.clear()
        if len(recent) > last_n:
            left = recent.popleft()
            if self._cache is not None:
                self._left.append(left)

    def recent_aggregate(self) -> Aggregate:
        """The aggregate of exactly the pairs in ``recent``. Read-only: the value is
        updated in place by the next read after a change."""
        agg = self._cache
        if agg is None:
            agg = self._cache = Aggregate.of_pairs(self.recent)
        else:
            added = list(islice(self.recent, len(self.recent) - self._added, None))
            for pairs, sign in ((added, 1), (self._left, -1)):
                if len(pairs) > CATCH_UP_ONE_BY_ONE:
                    agg.merge(Aggregate.of_pairs(pairs), sign)
                else:
                    for p in pairs:
                        agg.add_pair(p, sign)
        self._added = 0
        self._left.clear()
        return agg

    def duration(self, stage: str) -> FixedHistogram:
        h = self.durations.get(stage)
        if h is None:
            h = self.durations[stage] = FixedHistogram.with_bounds(DURATION_BUCKETS_S)
        return h

    def to_json(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted,
            "errors": self.errors,
            "n_predictions": self.n_predictions,
            "n_labelled": self.n_labelled,
            "n_correct": self.n_correct,
            "n_expired": self.n_expired,
            "durations": {s: h.to_dict() for s, h in self.durations.items()},
            "label_delay_s": self.label_delay_s.to_dict(),
            "recent": list(self.recent),  # Pair tuples: JSON arrays as Pair.to_json
            "recent_start": _finite_or_none(self.recent_start),
            "since_count_window": self.since_count_window,
            "count_window_start": _finite_or_none(self.count_window_start),
            "last_window_accuracy": self.last_window_accuracy,
            "last_window_metrics": self.last_window_metrics,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VersionState:
        return cls(
            predicted=dict(d["predicted"]),
            errors=dict(d["errors"]),
            n_predictions=int(d["n_predictions"]),
            n_labelled=int(d["n_labelled"]),
            n_correct=int(d["n_correct"]),
            n_expired=int(d["n_expired"]),
            durations={s: FixedHistogram.from_dict(h) for s, h in d["durations"].items()},
            label_delay_s=LogSketch.from_dict(d["label_delay_s"]),
            # (older checkpoints also hold "recent_agg": derived from "recent", ignored)
            recent=deque(Pair.from_json(p) for p in d["recent"]),
            recent_start=_none_to(d["recent_start"], math.inf),
            since_count_window=int(d["since_count_window"]),
            count_window_start=_none_to(d["count_window_start"], math.inf),
            last_window_accuracy=dict(d["last_window_accuracy"]),
            last_window_metrics={k: dict(v) for k, v in d["last_window_metrics"].items()},
        )


# A pending prediction: (model, version, task, prediction, probabilities, event time).
Pending = tuple[str, str, str, Any, dict[str, float] | None, float]
# An orphan label: (label, model or None, event time).
Orphan = tuple[Any, str | None, float]


@dataclass(slots=True)
class PartitionState:
    """Everything the processor keeps for one partition (JSON-able via ``to_json``)."""

    partition: int = 0
    max_prediction_time: float | None = None
    max_label_time: float | None = None
    watermark: float = -math.inf
    next_sweep: float = -math.inf
    pending: dict[str, Pending] = field(default_factory=dict)
    orphans: dict[str, Orphan] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)  # id -> forget at (joined/error)
    expired: dict[str, float] = field(default_factory=dict)  # id -> forget at
    windows: dict[float, dict[float, dict[VersionKey, Aggregate]]] = field(default_factory=dict)
    versions: dict[VersionKey, VersionState] = field(default_factory=dict)
    orphan_labels: dict[str, int] = field(default_factory=dict)  # model ("" unknown) -> n
    late: dict[str, int] = field(default_factory=dict)  # "prediction"/"label"/"expiry"
    duplicates: dict[str, int] = field(default_factory=dict)
    labels_after_ttl: int = 0
    invalid_labels: int = 0
    auto_baselines: dict[str, float] = field(default_factory=dict)
    #: Events whose time was clamped to arrival + max_future_s, by kind.
    clamped: dict[str, int] = field(default_factory=dict)
    #: Entries evicted by a memory bound: "prediction", "label", "id".
    overflow: dict[str, int] = field(default_factory=dict)
    #: Source offsets handled so far, "topic:partition" -> next offset (set by the service).
    offsets: dict[str, int] = field(default_factory=dict)

    def version(self, model: str, version: str) -> VersionState:
        key = (model, version)
        vs = self.versions.get(key)
        if vs is None:
            vs = self.versions[key] = VersionState()
        return vs

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "max_prediction_time": self.max_prediction_time,
            "max_label_time": self.max_label_time,
            "watermark": _finite_or_none(self.watermark),
            "next_sweep": _finite_or_none(self.next_sweep),
            "pending": self.pending,
            "orphans": self.orphans,
            "done": self.done,
            "expired": self.expired,
            "windows": [
                [length, start, m, v, agg.to_dict()]
                for length, by_start in self.windows.items()
                for start, by_version in by_start.items()
                for (m, v), agg in by_version.items()
            ],
            "versions": [[m, v, vs.to_json()] for (m, v), vs in self.versions.items()],
            "orphan_labels": self.orphan_labels,
            "late": self.late,
            "duplicates": self.duplicates,
            "labels_after_ttl": self.labels_after_ttl,
            "invalid_labels": self.invalid_labels,
            "auto_baselines": self.auto_baselines,
            "clamped": self.clamped,
            "overflow": self.overflow,
            "offsets": self.offsets,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PartitionState:
        windows: dict[float, dict[float, dict[VersionKey, Aggregate]]] = {}
        for length, start, m, v, agg in d["windows"]:
            windows.setdefault(float(length), {}).setdefault(float(start), {})[(m, v)] = (
                Aggregate.from_dict(agg)
            )
        return cls(
            partition=int(d["partition"]),
            max_prediction_time=d["max_prediction_time"],
            max_label_time=d["max_label_time"],
            watermark=_none_to(d["watermark"], -math.inf),
            next_sweep=_none_to(d["next_sweep"], -math.inf),
            pending={
                k: (p[0], p[1], p[2], p[3], p[4], float(p[5])) for k, p in d["pending"].items()
            },
            orphans={k: (o[0], o[1], float(o[2])) for k, o in d["orphans"].items()},
            done={k: float(t) for k, t in d["done"].items()},
            expired={k: float(t) for k, t in d["expired"].items()},
            windows=windows,
            versions={(m, v): VersionState.from_json(vs) for m, v, vs in d["versions"]},
            orphan_labels=dict(d["orphan_labels"]),
            late=dict(d["late"]),
            duplicates=dict(d["duplicates"]),
            labels_after_ttl=int(d["labels_after_ttl"]),
            invalid_labels=int(d["invalid_labels"]),
            auto_baselines=dict(d["auto_baselines"]),
            clamped=dict(d.get("clamped", {})),  # absent in older checkpoints
            overflow=dict(d.get("overflow", {})),
            offsets={str(k): int(o) for k, o in d["offsets"].items()},
        )


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _none_to(x: float | None, default: float) -> float:
    return default if x is None else float(x)


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _bounded_number(x: object) -> float | None:
    """``x`` as a float when it is a number within ``±LIMITS.max_abs_number`` (the
    contract's bound; checked again so a sum of squares can never overflow)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    if not -LIMITS.max_abs_number <= x <= LIMITS.max_abs_number:
        return None
    return float(x)


def _due(entries: dict[str, _V], due: Callable[[_V], float], w: float, slack: float) -> list[str]:
    """Keys of ``entries`` (in insertion order) due at ``w``; the scan stops at the first
    entry due after ``w + slack``."""
    keys = []
    for key, value in entries.items():
        at = due(value)
        if at <= w:
            keys.append(key)
        elif at > w + slack:
            break
    return keys


def _oldest(entries: Mapping[str, object], bound: int) -> list[str]:
    """The oldest keys to evict from ``entries`` over ``bound`` (a share of the bound at
    once, so the scan from the front is paid once for many entries)."""
    n = len(entries) - bound + max(1, int(bound * EVICT_FRACTION))
    return list(islice(entries, min(n, len(entries))))


class MetricsProcessor:
    """``handle(event, state) -> (state, outputs)`` with a fixed :class:`MetricsConfig`."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self._lengths = tuple(sorted(float(x) for x in self.config.window_lengths_s))
        if not self._lengths:
            raise ValueError("at least one window length is needed")
        self._base = self._lengths[0]
        self._coarse = self._lengths[1:]
        for length in self._coarse:
            if abs(length / self._base - round(length / self._base)) > 1e-9:
                raise ValueError(f"window {length:g}s is not a multiple of {self._base:g}s")
        self._forget_after = self.config.label_ttl_s + self.config.orphan_grace_s

    # -- entry points ----------------------------------------------------------------
    def handle(
        self, event: Event, state: PartitionState, arrival: float | None = None
    ) -> tuple[PartitionState, list[ClosedWindow]]:
        """Fold one event into ``state``; ``arrival`` is its arrival time (Unix seconds,
        e.g. the broker timestamp), which bounds its event time (``max_future_s``)."""
        out: list[ClosedWindow] = []
        before = (state.max_prediction_time, state.max_label_time)
        t = event.event_time.timestamp()
        is_prediction = isinstance(event, PredictionLogged)
        if arrival is not None and t > arrival + self.config.max_future_s:
            t = arrival + self.config.max_future_s
            _bump(state.clamped, "prediction" if is_prediction else "label")
        if isinstance(event, PredictionLogged):
            self._prediction(event, t, state, out)
        else:
            self._label(event, t, state, out)
        if (state.max_prediction_time, state.max_label_time) != before:
            self._advance(state, out)  # the watermark only moves when an input's max does
        return state, out

    def flush(self, state: PartitionState) -> list[ClosedWindow]:
        """Close every open event-time window (end of a replay or an offline report)."""
        out: list[ClosedWindow] = []
        if math.isfinite(state.watermark):
            self._sweep(state, state.watermark)  # expiries due count, as before any close
        for length in self._lengths:
            for start in sorted(state.windows.get(length, {})):
                self._close(state, length, start, out)
        return out

    # -- predictions -----------------------------------------------------------------
    def _prediction(
        self, e: PredictionLogged, t: float, state: PartitionState, out: list[ClosedWindow]
    ) -> None:
        pid = e.prediction_id
        if self._known_prediction(state, pid, t):
            _bump(state.duplicates, "prediction")
            return
        if state.max_prediction_time is None or t > state.max_prediction_time:
            state.max_prediction_time = t
        vs = state.version(e.model, e.version)
        vs.n_predictions += 1
        predicted: str | None = None
        if e.error_type is not None:
            _bump(vs.errors, e.error_type)
        elif e.task == "classification":
            predicted = tracked_class(vs.predicted, class_key(e.prediction))
            _bump(vs.predicted, predicted)
        else:  # served regression predictions count too (model_predictions_total)
            _bump(vs.predicted, tracked_class(vs.predicted, REGRESSION_CLASS))
        latency_s = e.latency_ms / 1000.0
        vs.duration("total").add(latency_s)
        if e.stage_latency_ms:
            for stage, ms in e.stage_latency_ms.items():
                vs.duration(stage).add(ms / 1000.0)
        key = (e.model, e.version)
        agg = self._window(state, t, key, "prediction")
        if agg is not None:
            agg.add_prediction(predicted, e.latency_ms, e.error_type)
        if e.error_type is not None or e.prediction is None:
            self._remember(state, state.done, pid, t + self._forget_after)
            return
        pending: Pending = (e.model, e.version, e.task, e.prediction, e.probabilities, t)
        orphan = state.orphans.get(pid)
        if orphan is not None:
            # joins as the label's own path would (see _label); a label before the grace
            # or beyond the id's memory stays an orphan, counted by the sweep
            t_label = orphan[2]
            cfg = self.config
            if t - cfg.orphan_grace_s < t_label < t + cfg.label_ttl_s:
                del state.orphans[pid]
                self._join(state, pid, pending, orphan[0], t_label, out)
                return
            if t + cfg.label_ttl_s <= t_label < t + self._forget_after:
                del state.orphans[pid]  # the label came after the TTL
                self._expire(state, pid, pending)
                self._after_ttl(state, pid, t_label)
                return
        if t + self.config.label_ttl_s <= state.watermark:
            self._expire(state, pid, pending)  # its TTL is already over
        else:
            state.pending[pid] = pending
            if len(state.pending) > self.config.max_pending:
                self._evict_pending(state)

    def _known_prediction(self, state: PartitionState, pid: str, t: float) -> bool:
        """Whether a prediction at ``t`` repeats a known id (event time decides: an id is
        remembered until ``label_ttl_s + orphan_grace_s`` after its first prediction)."""
        p = state.pending.get(pid)
        if p is not None:
            if t < p[5] + self._forget_after:
                return True
            del state.pending[pid]  # long over in event time: expire it, t is new
            self._expire(state, pid, p)
        for ids in (state.done, state.expired):
            at = ids.get(pid)
            if at is not None and t < at:
                return True
        return False

    # -- labels ----------------------------------------------------------------------
    def _label(
        self, e: LabelObserved, t: float, state: PartitionState, out: list[ClosedWindow]
    ) -> None:
        if state.max_label_time is None or t > state.max_label_time:
            state.max_label_time = t
        pid = e.prediction_id
        cfg = self.config
        pending = state.pending.get(pid)
        if pending is not None:
            t_pred = pending[5]
            if t_pred - cfg.orphan_grace_s < t < t_pred + cfg.label_ttl_s:
                del state.pending[pid]
                self._join(state, pid, pending, e.label, t, out)
                return
            if t_pred + cfg.label_ttl_s <= t < t_pred + self._forget_after:
                del state.pending[pid]  # after the TTL, swept or not
                self._expire(state, pid, pending)
                self._after_ttl(state, pid, t)
                return
            # else too early for its prediction, or beyond the id's memory: an orphan
            # (below), as in the other order or once the id is forgotten
        else:
            at = state.done.get(pid)
            if at is not None and t < at:
                _bump(state.duplicates, "label")
                return
            at = state.expired.get(pid)
            if at is not None and t < at:
                self._after_ttl(state, pid, t)
                return
        orphan = state.orphans.get(pid)
        if orphan is not None:
            if t < orphan[2] + cfg.orphan_grace_s:
                _bump(state.duplicates, "label")
                return
            del state.orphans[pid]  # the first one's grace ended before t: an orphan
            _bump(state.orphan_labels, orphan[1] or "")
        if t + cfg.orphan_grace_s <= state.watermark:
            _bump(state.orphan_labels, e.model or "")  # its grace period is already over
        else:
            state.orphans[pid] = (e.label, e.model, t)
            if len(state.orphans) > cfg.max_orphans:
                self._evict_orphans(state)

    def _after_ttl(self, state: PartitionState, pid: str, t_label: float) -> None:
        """A label for an expired prediction: counted; a repeat of it is a duplicate
        (the id is remembered at least ``orphan_grace_s`` past this label)."""
        state.labels_after_ttl += 1
        at = state.expired.pop(pid, None)
        if at is not None:
            self._remember(state, state.done, pid, max(at, t_label + self.config.orphan_grace_s))

    # -- memory bounds ---------------------------------------------------------------
    def _evict_pending(self, state: PartitionState) -> None:
        for pid in _oldest(state.pending, self.config.max_pending):
            p = state.pending.pop(pid)
            _bump(state.overflow, "prediction")
            self._expire(state, pid, p)

    def _evict_orphans(self, state: PartitionState) -> None:
        for pid in _oldest(state.orphans, self.config.max_orphans):
            o = state.orphans.pop(pid)
            _bump(state.overflow, "label")
            _bump(state.orphan_labels, o[1] or "")

    def _remember(self, state: PartitionState, ids: dict[str, float], pid: str, at: float) -> None:
        ids[pid] = at
        if len(ids) > self.config.max_remembered:
            for old in _oldest(ids, self.config.max_remembered):
                del ids[old]
                _bump(state.overflow, "id")

    def _join(
        self,
        state: PartitionState,
        pid: str,
        pred: Pending,
        label: Any,
        t_label: float,
        out: list[ClosedWindow],
    ) -> None:
        model, version, task, prediction, probabilities, t_pred = pred
        self._remember(state, state.done, pid, t_pred + self._forget_after)
        delay = max(0.0, t_label - t_pred)
        if task == "regression":
            y, y_hat = _bounded_number(label), _bounded_number(prediction)
            if y is None or y_hat is None:  # a string, or beyond the contract's bound
                state.invalid_labels += 1
                return
            pair = Pair.regression(y, y_hat, delay)
        else:
            pair = Pair.classification(label, prediction, probabilities, delay)
        vs = state.version(model, version)
        vs.n_labelled += 1
        if pair.task == "c" and pair.label == pair.predicted:
            vs.n_correct += 1
        if vs.label_delay_s.alpha == DEFAULT_ALPHA:
            vs.label_delay_s.add_bucket(pair.delay_bucket, delay)  # the pair's own bucket
        else:
            vs.label_delay_s.add(delay)
        t = max(t_pred, t_label)
        key = (model, version)
        agg = self._window(state, t, key, "label")
        if agg is not None:
            agg.add_pair(pair)
        vs.push(pair, self.config.last_n)  # the last-N window (aggregated when read)
        vs.count_window_start = min(vs.count_window_start, t)
        vs.since_count_window += 1
        if vs.since_count_window >= self.config.last_n:
            self._emit_count_window(state, model, version, vs, t, out)

    def _emit_count_window(
        self,
        state: PartitionState,
        model: str,
        version: str,
        vs: VersionState,
        end: float,
        out: list[ClosedWindow],
    ) -> None:
        agg = Aggregate.of_pairs(vs.recent)  # the last N pairs: those since the last one
        metrics = agg.metrics()
        if model not in self.config.baselines and model not in state.auto_baselines:
            acc = metrics.get("accuracy")
            if acc is not None and acc > 0:
                state.auto_baselines[model] = acc
        self._compare(state, model, vs, "count", metrics)
        out.append(
            ClosedWindow(
                model,
                version,
                "count",
                None,
                self.config.last_n,
                vs.count_window_start,
                end,
                state.partition,
                agg,
                metrics,
            )
        )
        vs.since_count_window = 0
        vs.count_window_start = math.inf

    # -- windows ---------------------------------------------------------------------
    def _window(
        self, state: PartitionState, t: float, key: VersionKey, kind: str
    ) -> Aggregate | None:
        """The finest window's aggregate at ``t`` (None, counted late, when closed);
        coarser windows are merged from the finest ones as these close."""
        length = self._base
        start = math.floor(t / length) * length
        if start + length <= state.watermark:
            _bump(state.late, kind)
            return None
        by_start = state.windows.get(length)
        if by_start is None:
            by_start = state.windows[length] = {}
        by_version = by_start.get(start)
        if by_version is None:
            by_version = by_start[start] = {}
        agg = by_version.get(key)
        if agg is None:
            agg = by_version[key] = Aggregate()
        return agg

    def _advance(self, state: PartitionState, out: list[ClosedWindow]) -> None:
        cfg = self.config
        wp = (
            None
            if state.max_prediction_time is None
            else state.max_prediction_time - cfg.allowed_lateness_s
        )
        wl = None if state.max_label_time is None else state.max_label_time - cfg.allowed_lateness_s
        if wp is None and wl is None:
            return
        # an input not seen yet counts as lagging: it holds the watermark max_input_lag_s back
        lag = cfg.max_input_lag_s
        wp = -math.inf if wp is None else wp
        wl = -math.inf if wl is None else wl
        w = min(max(wp, wl - lag), max(wl, wp - lag))
        if w <= state.watermark:
            return
        base = state.windows.get(self._base)
        closing = base is not None and bool(base) and min(base) + self._base <= w
        if closing or w >= state.next_sweep:
            self._sweep(state, w)  # before the watermark moves: expiries land in open windows
        state.watermark = w
        if closing:
            for length in self._lengths:  # finest first: it feeds the coarser ones
                by_start = state.windows.get(length)
                if by_start:
                    for start in sorted(x for x in by_start if x + length <= w):
                        self._close(state, length, start, out)

    def _sweep(self, state: PartitionState, w: float) -> None:
        """Expire pending predictions, orphan labels and remembered ids (at most once per
        ``SWEEP_INTERVAL_S`` of event time, and before any window closes)."""
        state.next_sweep = w + SWEEP_INTERVAL_S
        # Entries are in arrival order, which is event-time order within the allowed
        # lateness: the scan goes that far past the first entry not due yet.
        slack = self.config.allowed_lateness_s
        ttl = self.config.label_ttl_s
        for pid in _due(state.pending, lambda p: p[5] + ttl, w, slack):
            self._expire(state, pid, state.pending.pop(pid))
        grace = self.config.orphan_grace_s
        for pid in _due(state.orphans, lambda o: o[2] + grace, w, slack):
            _bump(state.orphan_labels, state.orphans.pop(pid)[1] or "")
        for ids in (state.done, state.expired):
            for pid in _due(ids, float, w, slack):
                del ids[pid]

    def _expire(self, state: PartitionState, pid: str, p: Pending) -> None:
        model, version, _, _, _, t_pred = p
        self._remember(state, state.expired, pid, t_pred + self._forget_after)
        vs = state.version(model, version)
        vs.n_expired += 1
        agg = self._window(state, t_pred + self.config.label_ttl_s, (model, version), "expiry")
        if agg is not None:
            agg.n_expired += 1

    def _close(
        self, state: PartitionState, length: float, start: float, out: list[ClosedWindow]
    ) -> None:
        by_version = state.windows[length].pop(start)
        name = f"{length:g}s"
        if length == self._base:
            for coarse in self._coarse:
                c_start = math.floor(start / coarse) * coarse
                into = state.windows.setdefault(coarse, {}).setdefault(c_start, {})
                for key, agg in by_version.items():
                    target = into.get(key)
                    if target is None:
                        target = into[key] = Aggregate()
                    target.merge(agg)
        for (model, version), agg in sorted(by_version.items()):
            metrics = agg.metrics()
            vs = state.version(model, version)
            self._compare(state, model, vs, name, metrics)
            vs.last_window_metrics[name] = metrics
            out.append(
                ClosedWindow(
                    model,
                    version,
                    "tumbling",
                    length,
                    None,
                    start,
                    start + length,
                    state.partition,
                    agg,
                    metrics,
                )
            )

    def _compare(
        self,
        state: PartitionState,
        model: str,
        vs: VersionState,
        name: str,
        metrics: dict[str, float],
    ) -> None:
        """Add baseline comparison and trend (recent vs previous window) to ``metrics``."""
        acc = metrics.get("accuracy")
        if acc is None:
            return
        prev = vs.last_window_accuracy.get(name)
        if prev is not None:
            metrics["accuracy_trend"] = acc - prev
        vs.last_window_accuracy[name] = acc
        comparison = self.baseline_comparison(state, model, acc, int(metrics.get("n_labelled", 0)))
        if comparison is not None:
            metrics["baseline_accuracy"], metrics["accuracy_drop_percent"], drift = comparison
            metrics["accuracy_degraded"] = 1.0 if drift else 0.0

    def baseline(self, state: PartitionState, model: str) -> float | None:
        declared = self.config.baselines.get(model)
        return declared if declared is not None else state.auto_baselines.get(model)

    def baseline_comparison(
        self, state: PartitionState, model: str, accuracy: float, n: int
    ) -> tuple[float, float, bool] | None:
        """(baseline, drop in percent of baseline, accuracy degraded flag), or None.

        The flag needs the drop to reach ``drift_drop_percent`` *and* be significant: a
        one-sided z test of ``accuracy`` (over ``n`` labels) against the baseline.
        """
        base = self.baseline(state, model)
        if base is None or base <= 0:
            return None
        drop = (base - accuracy) / base * 100.0
        drift = False
        cfg = self.config
        if n >= cfg.min_labelled_for_drift and drop >= cfg.drift_drop_percent:
            se = math.sqrt(max(base * (1 - base), 1e-12) / n)
            drift = (base - accuracy) / se >= cfg.drift_z
        return base, drop, drift

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
        acc = metrics.get("accuracy")
        if acc is not None and first is not None:
            cmp = self.baseline_comparison(first, model, acc, int(metrics["n_labelled"]))
            if cmp is not None:
                metrics["baseline_accuracy"], metrics["accuracy_drop_percent"], drift = cmp
                metrics["accuracy_degraded"] = 1.0 if drift else 0.0
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
