"""Experiment bookkeeping: exposures as unique units and unit-level outcomes per arm.

One :class:`TaskState` per processor task (a partition of the exposures and outcomes
topics, which are both keyed by unit id, so a unit's events meet in one task). It keeps

- one record per unit: its arm in each experiment (first exposure wins; a later
  exposure to another arm is counted as a conflict), its unit-level metric values
  (sum and maximum of its outcomes, plus the pre-period covariate) and the ids of its
  recent outcome events (duplicates are dropped);
- per experiment a mergeable :class:`ExperimentPartial` of sums over units, which the
  analysis adds up over all tasks.

A unit's contribution to the sums is recomputed whenever its record changes (old
contribution out, new one in), so outcomes may arrive before or after the exposure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved

#: Outcome values of an outcome without ``experiment_id`` wait under this key until
#: the unit is exposed; they count for every experiment the unit is (or gets) in.
ANY = "*"
#: Exposures per arm are also counted per event-time bucket of this many seconds
#: (the sample-ratio check needs the split in force at each time).
BUCKET_SECONDS = 60
MAX_EVENT_IDS = 32

# Index of each entry of a metric accumulator: raw sums (SY: mean, CUPED; SMAX: binary
# successes; NX..SXY: CUPED covariate) and, for the variance, the numerically stable
# count / mean / m2 of the values of the units that have one (Welford; Chan to merge).
SY, SYY, SMAX, NX, SX, SXX, SXY, NY, MY, M2Y = range(10)
ACC_SIZE = 10
_ADDITIVE = 7

Note = Literal[
    "exposure_new",
    "exposure_duplicate",
    "exposure_conflict",
    "outcome_applied",
    "outcome_pending",
    "outcome_duplicate",
]


def _zeros() -> list[float]:
    return [0.0] * ACC_SIZE


def _welford(acc: list[float], y: float, sign: float) -> None:
    """Add (sign > 0) or remove (sign < 0) one value from acc's count / mean / m2."""
    n, mean, m2 = acc[NY], acc[MY], acc[M2Y]
    if sign > 0:
        n1 = n + 1.0
        delta = y - mean
        mean1 = mean + delta / n1
        m2 += delta * (y - mean1)
    else:
        n1 = n - 1.0
        if n1 <= 0:
            acc[NY] = acc[MY] = acc[M2Y] = 0.0
            return
        mean1 = mean - (y - mean) / n1
        m2 = max(0.0, m2 - (y - mean1) * (y - mean))
    acc[NY], acc[MY], acc[M2Y] = n1, mean1, m2


def _merge_acc(acc: list[float], other: list[float]) -> None:
    """Add ``other`` into ``acc``: sums add, count / mean / m2 merge by Chan's update."""
    for i in range(_ADDITIVE):
        acc[i] += other[i]
    n_a, n_b = acc[NY], other[NY]
    n = n_a + n_b
    if n_b <= 0:
        return
    if n_a <= 0:
        acc[NY], acc[MY], acc[M2Y] = other[NY], other[MY], other[M2Y]
        return
    delta = other[MY] - acc[MY]
    acc[MY] += delta * (n_b / n)
    acc[M2Y] += other[M2Y] + delta * delta * (n_a * n_b / n)
    acc[NY] = n


def upgrade_accumulator(sums: list[float], units: int) -> list[float]:
    """An accumulator stored before count / mean / m2 existed (7 sums): the units
    without a value counted as zeros, as the analysis did then."""
    out = [float(v) for v in sums] + [0.0] * (ACC_SIZE - len(sums))
    if len(sums) < ACC_SIZE and units > 0:
        out[NY] = float(units)
        out[MY] = out[SY] / units
        out[M2Y] = max(0.0, out[SYY] - out[SY] * out[MY])
    return out


@dataclass
class ExperimentPartial:
    """Sums over the units of one experiment in one task (add partials to merge)."""

    units: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    #: metric -> arm -> [sum y, sum y^2, sum max, n with x, sum x, sum x^2, sum x*y,
    #: n with y, mean y, m2 y] (see ``SY`` ... ``M2Y``)
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: bucket start (epoch seconds) -> arm -> new units
    buckets: dict[int, dict[str, int]] = field(default_factory=dict)

    def merge(self, other: ExperimentPartial) -> ExperimentPartial:
        out = ExperimentPartial.from_dict(self.to_dict())
        for arm, n in other.units.items():
            out.units[arm] = out.units.get(arm, 0) + n
        out.conflicts += other.conflicts
        for metric, arms in other.metrics.items():
            mine = out.metrics.setdefault(metric, {})
            for arm, sums in arms.items():
                _merge_acc(
                    mine.setdefault(arm, _zeros()),
                    upgrade_accumulator(sums, other.units.get(arm, 0)),
                )
        for bucket, arms_n in other.buckets.items():
            b = out.buckets.setdefault(bucket, {})
            for arm, n in arms_n.items():
                b[arm] = b.get(arm, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": dict(self.units),
            "conflicts": self.conflicts,
            "metrics": {
                m: {a: list(s) for a, s in arms.items()} for m, arms in self.metrics.items()
            },
            "buckets": {str(b): dict(arms) for b, arms in self.buckets.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentPartial:
        units = {str(a): int(n) for a, n in data.get("units", {}).items()}
        return cls(
            units=units,
            conflicts=int(data.get("conflicts", 0)),
            metrics={
                str(m): {
                    str(a): upgrade_accumulator(s, units.get(str(a), 0)) for a, s in arms.items()
                }
                for m, arms in data.get("metrics", {}).items()
            },
            buckets={
                int(b): {str(a): int(n) for a, n in arms.items()}
                for b, arms in data.get("buckets", {}).items()
            },
        )


def merge_partials(partials: Iterable[ExperimentPartial]) -> ExperimentPartial:
    out = ExperimentPartial()
    for p in partials:
        out = out.merge(p)
    return out


@dataclass
class UnitRecord:
    #: experiment -> arm
    arms: dict[str, str] = field(default_factory=dict)
    #: experiment (or ANY) -> metric -> [sum, max, covariate or None]
    values: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    #: recent outcome event ids (bounded), for deduplication
    seen: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.arms, "v": self.values, "e": self.seen}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitRecord:
        return cls(arms=dict(data["a"]), values=dict(data["v"]), seen=list(data["e"]))


def _contribution(value: list[float | None]) -> list[float]:
    y = float(value[0] or 0.0)
    mx = float(value[1] or 0.0)
    x = value[2]
    if x is None:
        return [y, y * y, mx, 0.0, 0.0, 0.0, 0.0]
    return [y, y * y, mx, 1.0, x, x * x, x * y]


@dataclass
class TaskState:
    """All bookkeeping of one task; ``dirty_units`` are the records changed since the
    last checkpoint (the service persists only those)."""

    units: dict[str, UnitRecord] = field(default_factory=dict)
    experiments: dict[str, ExperimentPartial] = field(default_factory=dict)
    dirty_units: set[str] = field(default_factory=set)
    dirty_experiments: set[str] = field(default_factory=set)

    def partial(self, experiment_id: str) -> ExperimentPartial:
        return self.experiments.setdefault(experiment_id, ExperimentPartial())


def _metric_values(rec: UnitRecord, experiment_id: str) -> dict[str, list[float | None]]:
    """The unit's values for an experiment: its own plus the unattributed ones."""
    own = rec.values.get(experiment_id, {})
    anyv = rec.values.get(ANY, {}) if experiment_id != ANY else {}
    out = {m: list(v) for m, v in own.items()}
    for m, v in anyv.items():
        cur = out.setdefault(m, [0.0, 0.0, None])
        cur[0] = float(cur[0] or 0.0) + float(v[0] or 0.0)
        cur[1] = max(float(cur[1] or 0.0), float(v[1] or 0.0))
        if cur[2] is None:
            cur[2] = v[2]
    return out


def _apply(
    state: TaskState,
    experiment_id: str,
    arm: str,
    values: dict[str, list[float | None]],
    sign: float,
) -> None:
    part = state.partial(experiment_id)
    for metric, value in values.items():
        acc = part.metrics.setdefault(metric, {}).setdefault(arm, _zeros())
        contribution = _contribution(value)
        for i, c in enumerate(contribution):
            acc[i] += sign * c
        _welford(acc, contribution[SY], sign)
    state.dirty_experiments.add(experiment_id)


def handle_exposure(event: ExposureLogged, state: TaskState) -> tuple[TaskState, Note]:
    rec = state.units.get(event.unit_id)
    if rec is None:
        rec = state.units[event.unit_id] = UnitRecord()
    current = rec.arms.get(event.experiment_id)
    if current is not None:
        if current == event.arm:
            return state, "exposure_duplicate"
        state.partial(event.experiment_id).conflicts += 1
        state.dirty_experiments.add(event.experiment_id)
        return state, "exposure_conflict"
    rec.arms[event.experiment_id] = event.arm
    part = state.partial(event.experiment_id)
    part.units[event.arm] = part.units.get(event.arm, 0) + 1
    ts = event.event_time.timestamp()
    bucket = int(math.floor(ts / BUCKET_SECONDS) * BUCKET_SECONDS)
    counts = part.buckets.setdefault(bucket, {})
    counts[event.arm] = counts.get(event.arm, 0) + 1
    _apply(state, event.experiment_id, event.arm, _metric_values(rec, event.experiment_id), 1.0)
    state.dirty_units.add(event.unit_id)
    return state, "exposure_new"


def handle_outcome(event: OutcomeObserved, state: TaskState) -> tuple[TaskState, Note]:
    rec = state.units.get(event.unit_id)
    if rec is None:
        rec = state.units[event.unit_id] = UnitRecord()
    if event.event_id in rec.seen:
        return state, "outcome_duplicate"
    rec.seen.append(event.event_id)
    del rec.seen[:-MAX_EVENT_IDS]
    state.dirty_units.add(event.unit_id)
    key = event.experiment_id or ANY
    affected = [key] if key != ANY else list(rec.arms)
    affected = [e for e in affected if e in rec.arms]
    before = {e: _metric_values(rec, e) for e in affected}
    metric_vals = rec.values.setdefault(key, {})
    cur = metric_vals.setdefault(event.metric, [0.0, 0.0, None])
    cur[0] = float(cur[0] or 0.0) + event.value
    cur[1] = max(float(cur[1] or 0.0), event.value) if cur[1] is not None else event.value
    if cur[2] is None and event.pre_period_value is not None:
        cur[2] = event.pre_period_value
    for e in affected:
        arm = rec.arms[e]
        old = {m: v for m, v in before[e].items() if m == event.metric}
        new = {m: v for m, v in _metric_values(rec, e).items() if m == event.metric}
        _apply(state, e, arm, old, -1.0)
        _apply(state, e, arm, new, 1.0)
    return state, "outcome_applied" if affected else "outcome_pending"


def handle(
    event: ExposureLogged | OutcomeObserved, state: TaskState
) -> tuple[TaskState, list[Note]]:
    """Fold one event into ``state`` (in place, returned for chaining) -> notes."""
    if isinstance(event, ExposureLogged):
        state, note = handle_exposure(event, state)
    else:
        state, note = handle_outcome(event, state)
    return state, [note]


def run(events: Iterable[ExposureLogged | OutcomeObserved]) -> tuple[TaskState, list[Note]]:
    """In-memory driver: fold every event into a fresh state."""
    state = TaskState()
    notes: list[Note] = []
    for ev in events:
        state, out = handle(ev, state)
        notes.extend(out)
    return state, notes
