"""The pure, seeded simulation engine: a scenario in, contract events out.

>>> from modelguard.core.simulation import Scenario, SimulationEngine
>>> from datetime import datetime, UTC
>>> scenario = Scenario.model_validate({"name": "demo", "seed": 1, "rate_per_second": 20,
...     "models": [{"name": "fraud", "versions": {"v1": {}, "v2": {}},
...                 "weights": {"v1": 0.5, "v2": 0.5},
...                 "features": {"amount": {"kind": "normal", "mean": 10, "std": 2}}}]})
>>> engine = SimulationEngine(scenario, start_time=datetime(2026, 1, 1, tzinfo=UTC))
>>> events = engine.run_for(5)            # 5 simulated seconds, 100 predictions + labels
>>> sum(type(e).__name__ == "PredictionLogged" for e in events)
100
>>> engine.elapsed
5.0

Time advances in ticks of ``scenario.tick_seconds``. Each tick draws its requests
(``rate_per_second * tick`` on average, fractional parts carried over), their model
(by ``traffic_share``), unit, features, true label, correctness, latency and errors
from one ``numpy.random.Generator`` seeded by the scenario, in a fixed order; so the
same scenario gives the same events. ``assign(model, unit_id, event_time)`` picks the
version (default: sticky weighted assignment from the scenario's weights; the
simulator service passes the Redis routing client). Labels (and outcomes, for models
in an experiment) are released when their delay has elapsed; exposures are emitted
the first time a unit is seen on an arm, unless an ``exposure_loss`` incident drops
them (one extra uniform per request is drawn only while such an incident is active, so
other scenarios keep their exact event streams).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from modelguard.contracts.base import Event
from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.routing import CompiledTable, assign_slots
from modelguard.core.simulation.scenario import (
    AccuracyDrop,
    Categorical,
    ConceptDrift,
    Constant,
    DataDrift,
    Distribution,
    ErrorBurst,
    Exponential,
    ExposureLoss,
    LatencySpike,
    LogNormal,
    ModelSpec,
    Normal,
    Scenario,
    Uniform,
)

Assign = Callable[[str, str, datetime], str]


def draw(rng: np.random.Generator, dist: Distribution, n: int) -> list[float] | list[str]:
    """``n`` values of ``dist`` (floats, or strings for a categorical)."""
    if isinstance(dist, Normal):
        return list(rng.normal(dist.mean, dist.std, n).tolist())
    if isinstance(dist, Uniform):
        return list(rng.uniform(dist.low, dist.high, n).tolist())
    if isinstance(dist, LogNormal):
        return list(rng.lognormal(dist.mean, dist.sigma, n).tolist())
    if isinstance(dist, Exponential):
        return list(rng.exponential(dist.mean, n).tolist())
    if isinstance(dist, Constant):
        return [dist.value] * n
    names = list(dist.values)
    p = np.array([dist.values[k] for k in names], dtype=float)
    idx = rng.choice(len(names), size=n, p=p / p.sum())
    return [names[i] for i in idx.tolist()]


@dataclass
class SimulationStats:
    """Counts of emitted events, by kind and per version."""

    predictions: int = 0
    errors: int = 0
    labels: int = 0
    exposures: int = 0
    exposures_lost: int = 0
    outcomes: int = 0
    per_version: dict[str, int] = field(default_factory=dict)
    correct_per_version: dict[str, int] = field(default_factory=dict)
    labelled_per_version: dict[str, int] = field(default_factory=dict)


class SimulationEngine:
    """Runs a :class:`Scenario` tick by tick (see the module docstring).

    ``start_time`` is required unless the scenario has one; ``id_prefix`` prefixes
    prediction and event ids (default ``<name>-<seed>``; give each run its own when
    runs share topics, since consumers deduplicate by id).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        start_time: datetime | None = None,
        id_prefix: str | None = None,
    ) -> None:
        start = scenario.start_time or start_time
        if start is None:
            raise ValueError("start_time is required when the scenario has none")
        if start.utcoffset() is None:
            raise ValueError("start_time must be timezone-aware")
        self.scenario = scenario
        self.start_time = start
        self.id_prefix = id_prefix or f"{scenario.name}-{scenario.seed}"
        self._rng = np.random.default_rng(scenario.seed)
        self._tick = 0
        self._carry = 0.0
        self._seq = itertools.count()
        self._pending: list[tuple[float, int, list[Event]]] = []
        self._exposed: set[tuple[str, str, str]] = set()
        self._shares = np.array([m.traffic_share for m in scenario.models], dtype=float)
        self._shares /= self._shares.sum()
        self._tables = {
            m.name: CompiledTable(
                m.weights,
                slots=assign_slots({}, m.weights),
                salt=m.experiment_id or m.name,
            )
            for m in scenario.models
        }
        self.stats = SimulationStats()

    # -- time -----------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Simulated seconds done."""
        return self._tick * self.scenario.tick_seconds

    @property
    def now(self) -> datetime:
        return self.start_time + timedelta(seconds=self.elapsed)

    @property
    def finished(self) -> bool:
        return self.elapsed >= self.scenario.duration_seconds - 1e-9

    def default_assign(self, model: str, unit_id: str, event_time: datetime) -> str:
        """Sticky weighted assignment from the scenario's weights (no Redis)."""
        return self._tables[model].choose(unit_id)

    # -- running ----------------------------------------------------------------------------
    def run_for(self, seconds: float, assign: Assign | None = None) -> list[Event]:
        """All events of the next ``seconds`` simulated seconds (ticks rounded up)."""
        out: list[Event] = []
        for batch in self.ticks(seconds, assign):
            out.extend(batch)
        return out

    def ticks(
        self, seconds: float | None = None, assign: Assign | None = None
    ) -> Iterator[list[Event]]:
        """One list of events per tick, for ``seconds`` (default: to the scenario's end)."""
        if seconds is None:
            seconds = max(self.scenario.duration_seconds - self.elapsed, 0.0)
        n = math.ceil(seconds / self.scenario.tick_seconds - 1e-9)
        for _ in range(n):
            yield self.step(assign)

    def step(self, assign: Assign | None = None) -> list[Event]:
        """Advance one tick; returns its events in event-time order."""
        choose = assign or self.default_assign
        sc = self.scenario
        t0 = self.elapsed
        tick = sc.tick_seconds
        expected = sc.rate_per_second * tick + self._carry
        n = int(expected)
        self._carry = expected - n
        rng = self._rng
        offsets = np.sort(rng.uniform(0.0, tick, n)).tolist()
        model_idx = rng.choice(len(sc.models), size=n, p=self._shares).tolist()
        units = rng.integers(0, sc.units, n).tolist()
        timed: list[tuple[float, int, Event]] = []
        for mi, spec in enumerate(sc.models):
            rows = [i for i in range(n) if model_idx[i] == mi]
            if rows:
                self._model_requests(
                    spec, t0, [offsets[i] for i in rows], [units[i] for i in rows], choose, timed
                )
        self._tick += 1
        end = self.elapsed
        while self._pending and self._pending[0][0] < end:
            due, seq, events = heapq.heappop(self._pending)
            timed.extend((due, seq, e) for e in events)
        timed.sort(key=lambda x: (x[0], x[1]))
        return [e for _, _, e in timed]

    def drain(self) -> list[Event]:
        """Labels (and outcomes) still pending, whatever their due time."""
        out = []
        while self._pending:
            out.extend(heapq.heappop(self._pending)[2])
        return out

    # -- one model's requests of a tick ----------------------------------------------------------
    def _model_requests(
        self,
        spec: ModelSpec,
        t0: float,
        offsets: list[float],
        units: list[int],
        choose: Assign,
        out: list[tuple[float, int, Event]],
    ) -> None:
        rng = self._rng
        m = len(offsets)
        active = [
            inc for inc in self.scenario.incidents if inc.model == spec.name and inc.active(t0)
        ]
        features = {name: self._feature(spec, name, m, active) for name in spec.features}
        class_w = spec.class_weights
        accuracy_factor = 1.0
        for inc in active:
            if isinstance(inc, ConceptDrift):
                accuracy_factor *= inc.accuracy_factor
                if inc.class_weights is not None:
                    class_w = inc.class_weights
        if spec.task == "classification":
            p = np.array(class_w if class_w is not None else [1.0] * len(spec.classes), dtype=float)
            truth_idx = rng.choice(len(spec.classes), size=m, p=p / p.sum()).tolist()
        else:
            truth_vals = draw(rng, spec.target, m)
        u_correct = rng.random(m).tolist()
        u_wrong = rng.integers(0, max(len(spec.classes) - 1, 1), m).tolist()
        confidence = rng.uniform(0.5, 1.0, m).tolist()
        noise = rng.standard_normal(m).tolist()
        u_error = rng.random(m).tolist()
        latency_base = rng.standard_normal(m).tolist()
        u_label = rng.random(m).tolist()
        delays = draw(rng, spec.labels.delay_seconds, m)
        losses = [i for i in active if isinstance(i, ExposureLoss)]
        u_loss = rng.random(m).tolist() if losses else []

        for j in range(m):
            t = t0 + offsets[j]
            when = self.start_time + timedelta(seconds=t)
            unit = f"unit-{units[j]}"
            version = choose(spec.name, unit, when)
            vspec = spec.versions.get(version)
            if vspec is None:
                raise ValueError(
                    f"routing chose version {version!r} of {spec.name!r}, which the scenario "
                    f"does not define (versions: {', '.join(spec.versions)})"
                )
            accuracy, latency_factor, error_rate, error_type = (
                vspec.accuracy * accuracy_factor,
                1.0,
                vspec.error_rate,
                vspec.error_type,
            )
            for inc in active:
                if isinstance(inc, AccuracyDrop) and inc.version == version:
                    accuracy = inc.accuracy * accuracy_factor
                elif isinstance(inc, LatencySpike) and inc.version in (None, version):
                    latency_factor *= inc.factor
                elif isinstance(inc, ErrorBurst) and inc.version in (None, version):
                    error_rate, error_type = max(error_rate, inc.error_rate), inc.error_type
            seq = next(self._seq)
            pid = f"{self.id_prefix}-{seq}"
            latency = _latency(vspec.latency_ms, latency_base[j]) * latency_factor
            feats = {name: values[j] for name, values in features.items()}
            self.stats.per_version[version] = self.stats.per_version.get(version, 0) + 1
            if spec.experiment_id is not None:
                key = (spec.name, unit, version)
                lost = any(inc.version == version and u_loss[j] < inc.fraction for inc in losses)
                if key not in self._exposed and lost:
                    self._exposed.add(key)
                    self.stats.exposures_lost += 1
                elif key not in self._exposed:
                    self._exposed.add(key)
                    self.stats.exposures += 1
                    out.append(
                        (
                            t,
                            seq,
                            ExposureLogged(
                                event_id=f"{pid}-x",
                                experiment_id=spec.experiment_id,
                                unit_id=unit,
                                arm=version,
                                model=spec.name,
                                event_time=when,
                            ),
                        )
                    )
            common = {
                "prediction_id": pid,
                "model": spec.name,
                "version": version,
                "unit_id": unit,
                "experiment_id": spec.experiment_id,
                "event_time": when,
                "task": spec.task,
                "features": feats,
                "latency_ms": min(latency, 3_600_000.0),
            }
            self.stats.predictions += 1
            if u_error[j] < error_rate:
                self.stats.errors += 1
                out.append((t, seq, PredictionLogged(**common, error_type=error_type)))
                continue
            correct = u_correct[j] < accuracy
            probabilities: dict[str, float] | None = None
            if spec.task == "classification":
                ti = truth_idx[j]
                truth: int | float | str = spec.classes[ti]
                pi = ti if correct else (u_wrong[j] if u_wrong[j] < ti else u_wrong[j] + 1)
                predicted: int | float | str = spec.classes[pi]
                probabilities = _probabilities(spec, pi, confidence[j])
            else:
                truth = float(truth_vals[j])
                predicted = truth + noise[j] * vspec.noise_std
            out.append(
                (
                    t,
                    seq,
                    PredictionLogged(**common, prediction=predicted, probabilities=probabilities),
                )
            )
            if u_label[j] < spec.labels.fraction:
                due = t + max(float(delays[j]), 0.0)
                label_time = self.start_time + timedelta(seconds=due)
                later: list[Event] = [
                    LabelObserved(
                        prediction_id=pid,
                        model=spec.name,
                        label=truth,
                        event_time=label_time,
                    )
                ]
                self.stats.labels += 1
                self.stats.labelled_per_version[version] = (
                    self.stats.labelled_per_version.get(version, 0) + 1
                )
                if correct and spec.task == "classification":
                    self.stats.correct_per_version[version] = (
                        self.stats.correct_per_version.get(version, 0) + 1
                    )
                if spec.experiment_id is not None and spec.outcome_metric is not None:
                    value = (
                        float(predicted == truth)
                        if spec.task == "classification"
                        else -abs(float(predicted) - float(truth))
                    )
                    self.stats.outcomes += 1
                    later.append(
                        OutcomeObserved(
                            event_id=f"{pid}-o",
                            experiment_id=spec.experiment_id,
                            unit_id=unit,
                            metric=spec.outcome_metric,
                            value=value,
                            event_time=label_time,
                            model=spec.name,
                        )
                    )
                heapq.heappush(self._pending, (due, seq, later))

    def _feature(
        self, spec: ModelSpec, name: str, m: int, active: Sequence[object]
    ) -> list[float] | list[str]:
        dist: Distribution = spec.features[name]
        drifts = [i for i in active if isinstance(i, DataDrift) and i.feature == name]
        for d in drifts:
            if d.distribution is not None:
                dist = d.distribution
            elif d.values is not None and isinstance(dist, Categorical):
                dist = Categorical(kind="categorical", values=d.values)
        values = draw(self._rng, dist, m)
        for d in drifts:
            if d.distribution is None and d.values is None and (d.shift or d.scale != 1.0):
                values = [float(v) * d.scale + d.shift for v in values]
        return values


def _latency(dist: Distribution, z: float) -> float:
    """Latency from a standard normal draw (keeps the draw order fixed per request)."""
    if isinstance(dist, LogNormal):
        return float(math.exp(dist.mean + dist.sigma * z))
    if isinstance(dist, Normal):
        return max(dist.mean + dist.std * z, 0.0)
    if isinstance(dist, Constant):
        return max(dist.value, 0.0)
    if isinstance(dist, Uniform):
        phi = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        return max(dist.low + (dist.high - dist.low) * phi, 0.0)
    if isinstance(dist, Exponential):
        phi = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        return -dist.mean * math.log(max(1.0 - phi, 1e-300))
    raise ValueError(f"latency_ms cannot be {dist.kind}")


def _probabilities(spec: ModelSpec, predicted: int, confidence: float) -> dict[str, float]:
    k = len(spec.classes)
    rest = (1.0 - confidence) / (k - 1)
    probs = {str(c): rest for c in spec.classes}
    probs[str(spec.classes[predicted])] = confidence
    return probs
