"""The metrics processor's state per partition and per version, and their JSON form.

:class:`PartitionState` is what the service checkpoints to its compacted changelog
(ADR 0007); :class:`ClosedWindow` is what the processor emits when a window closes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from modelguard.contracts.ids import stable_id
from modelguard.core.metrics.aggregate import Aggregate, Pair
from modelguard.core.metrics.config import CATCH_UP_ONE_BY_ONE, DURATION_BUCKETS_S, VersionKey
from modelguard.core.metrics.sketch import FixedHistogram, LogSketch


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
        return stable_id("mw", self.model, self.version, spec, repr(self.start), self.partition)


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


def bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    """Add ``n`` to ``counts[key]``."""
    counts[key] = counts.get(key, 0) + n
