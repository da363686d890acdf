"""The drift processor: predictions and labels in, drift signals and window reports out.

``handle(event, state) -> (state, outputs)`` and ``run(events) -> outputs``, the same code
over Kafka (the drift service), over files (``modelguard drift``) and in tests.

Per model version it keeps, against the version's reference (or the model's):

* window tests over count windows of ``window_events`` predictions (see :mod:`window`):
  at each window close one :class:`DriftSignal` per tested column, the quality signals
  that fired, and the dataset signal (drifted share), plus a :class:`WindowReport`;
* sequential detectors on every event (see :mod:`sequential`): an alarm is a signal at
  once, without waiting for the window to close. Their false-alarm budget
  ``sequential_alpha`` per ``horizon`` events is for the whole model and split evenly
  across its features (Bonferroni), so adding features does not add false alarms;
* concept drift on the error stream (labels joined to their prediction by id; labels
  are co-partitioned with predictions, ADR 0002): river's ADWIN; a change counts only
  when the error rate went *up* by at least the LOW effect (2 points).

A version without any reference learns one from its first ``warmup_events``
predictions *by event time* (output :class:`ReferenceLearned`, which the service
publishes so every worker uses the same one). Over Kafka the worker reads several
partitions, and while it catches up on a backlog it gets them one after the other, so
"the first predictions to arrive" may be one partition's whole history, drifted part
included. The caller therefore passes each event's partition and the set of partitions
it reads (:meth:`DriftProcessor.assign`); the warm-up is learned only once every
partition's watermark (the latest prediction time seen on it) has passed the event time
of the ``warmup_events``-th earliest prediction buffered, or the partition has been read
to its end (:meth:`DriftProcessor.caught_up`). Without partitions (files, tests) the
input is one ordered stream and arrival order is time order.

The processor sees what one worker sees (its partitions: a random share of each
model's traffic, because keys are prediction ids); window accumulators are mergeable
if a later stage wants to combine workers exactly.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from river.drift import ADWIN

from modelguard.contracts.common import Severity
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import severity as sev
from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    category_of,
    is_number,
    safe_float,
)
from modelguard.core.drift.sequential import Alarm, NumericDriftDetector, SlidingWindowChi2
from modelguard.core.drift.window import (
    CategoricalAccumulator,
    EvaluationConfig,
    NumericAccumulator,
    TestResult,
    WindowAccumulator,
    WindowVerdict,
    add_values,
    evaluate_window,
)


@dataclass(frozen=True)
class DriftConfig:
    window_events: int = 5_000
    min_window_events: int = 100
    alpha: float = 0.05
    dataset_share: float = 0.2
    warmup_events: int = 2_000
    sequential: bool = True
    sequential_alpha: float = 0.05
    horizon: int = 10_000
    max_pending_predictions: int = 100_000
    adwin_delta: float = 0.002
    concept_baseline_labels: int = 500
    #: warm-up predictions buffered per version while partitions catch up, as a multiple
    #: of ``warmup_events``; beyond it the latest (by event time) are dropped from testing
    warmup_buffer_factor: int = 4
    #: recent error values kept to rebuild ADWIN after a restart (river's ADWIN has no
    #: serialisable state): the restored detector is fed the last min(width, this)
    adwin_replay: int = 5_000

    @property
    def evaluation(self) -> EvaluationConfig:
        return EvaluationConfig(alpha=self.alpha, dataset_share=self.dataset_share)


@dataclass(frozen=True)
class Observation:
    """What the processor needs of one prediction (built from a PredictionLogged or a
    row of a file)."""

    model: str
    version: str
    event_time: datetime
    features: Mapping[str, object]
    prediction: object = None
    confidence: float | None = None
    prediction_id: str | None = None
    task: str = "classification"

    @classmethod
    def from_event(cls, e: PredictionLogged) -> Observation:
        conf = max(e.probabilities.values()) if e.probabilities else None
        return cls(
            e.model,
            e.version,
            e.event_time,
            e.features,
            e.prediction,
            conf,
            e.prediction_id,
            e.task,
        )


@dataclass(frozen=True)
class WindowReport:
    model: str
    version: str
    reference_id: str
    window_index: int
    window_start: datetime
    window_end: datetime
    verdict: WindowVerdict
    sequential: tuple[DriftSignal, ...] = ()
    concept: tuple[DriftSignal, ...] = ()
    #: the error rate is still above the baseline by the LOW effect after an alarm
    concept_drifted: bool = False


@dataclass(frozen=True)
class ReferenceLearned:
    reference: ReferenceProfile


@dataclass(frozen=True)
class WarmupDropped:
    """``dropped`` warm-up predictions of a version were not tested: the warm-up buffer
    was full while partitions caught up on a backlog (the latest by event time go);
    ``total`` is the worker's running count (the service logs it and counts it)."""

    model: str
    version: str
    dropped: int
    total: int


Output = DriftSignal | WindowReport | ReferenceLearned | WarmupDropped
#: Window tests whose signal is sent every window, drifted or not (so consumers see a
#: recovery); the other window tests send a signal only when they fire.
HEADLINE_TESTS = frozenset({"ks", "chi_square", "drifted_share"})


@dataclass(frozen=True)
class ConceptAlarm:
    """A rise of the error rate by at least the LOW effect over ``baseline``, found by
    an ADWIN cut (``at_cut``) or by watching the post-cut window grow after a cut whose
    rise was still small (a gradual drift)."""

    estimate: float
    baseline: float
    increase: float
    width: int
    at_cut: bool


class ConceptDetector:
    """Concept drift on the error stream: ADWIN finds changes, the rise of the error
    rate over a healthy baseline decides whether a change is drift.

    * river's ADWIN (``delta``) runs on every error; after a cut it restarts from the
      errors after the cut, as river's detectors do. The judgement keeps its own state
      across the cut.
    * At an upward cut the rise is judged on the post-cut level against the
      ``baseline``: the mean after the most likely change point of the window ADWIN cut
      (or ADWIN's post-cut estimate when higher), not an estimate still holding
      pre-drift errors. A rise of at least the LOW effect (2 points) is an alarm at once.
    * A smaller rise (the first cut of a gradual drift) is not discarded: the detector
      keeps watching the new window and alarms as soon as its mean exceeds the baseline
      by the LOW effect *and* by three standard errors (``watch``, from
      ``MIN_WATCH_WIDTH`` errors on). At most one alarm per ADWIN cut, so it never
      alarms more often than ADWIN cuts.
    * The baseline is the model's healthy error rate, refreshed safely: the first
      ``baseline_labels`` labels set it; while not drifted and not watching, it follows
      ADWIN's estimate *down* whenever ADWIN's window (homogeneous: no cut in it) holds
      at least ``baseline_labels`` errors, so a model that improves is judged against its
      current level (a fixed first-500 baseline delayed detection by ~2,700 labels); at
      an upward cut it becomes the mean before the change point (the level the change
      started from) when that is lower. It never follows a rise, so errors leaking into
      ADWIN's window before the cut cannot hide the drift. A drifted model is
      judged against its healthy level until the error rate is back (``drifted``
      clears when the estimate is within the LOW effect of the baseline).

    river's ADWIN cannot be saved, so the last ``replay`` errors are kept (a JSON
    list); :meth:`from_dict` feeds the last ``min(width, replay)`` of them to a new
    ADWIN, which then covers the same errors as the one saved while its window is at
    most ``replay`` long (its estimate over them is the same; only the bucket layout,
    hence the exact moment of a later cut, can differ)."""

    #: standard errors by which a watched window must exceed the baseline
    WATCH_Z = 3.0
    #: errors a watched window needs before it may alarm
    MIN_WATCH_WIDTH = 50
    #: errors on each side of a change point
    MIN_SEGMENT = 200

    def __init__(self, delta: float, baseline_labels: int, replay: int = 5_000) -> None:
        self.adwin = ADWIN(delta=delta)  # type: ignore[no-untyped-call]
        self.delta = delta
        self.baseline_labels = baseline_labels
        self.n = 0
        self.errors = 0.0
        self.baseline: float | None = None
        self.drifted = False
        #: a cut raised the error rate by less than the LOW effect: watch the window
        self.watch = False
        self.cuts = 0
        self.recent: deque[float] = deque(maxlen=max(1, replay))
        self.alarm: ConceptAlarm | None = None

    @property
    def estimation(self) -> float:
        return float(self.adwin.estimation)

    def increase(self) -> float:
        return self.estimation - (self.baseline if self.baseline is not None else 0.0)

    def recovered(self) -> bool:
        """The error rate is back within the LOW effect of the baseline, measured on at
        least ``MIN_WATCH_WIDTH`` errors (a window just restarted by a cut says nothing)."""
        low = sev.SCALES["error_rate"][0]
        return int(self.adwin.width) >= self.MIN_WATCH_WIDTH and self.increase() < low

    def _change_point(self, before: int) -> tuple[float, float, int] | None:
        """(mean before, mean after, errors after) at the most likely change point of
        the window ADWIN just cut (its last ``before + 1`` errors, within the replay
        buffer): the split maximising the standardised difference of the two means,
        each side at least ``MIN_SEGMENT`` long. ADWIN drops old buckets only until no
        cut remains, so its post-cut window can still hold many pre-change errors; the
        change point measures the new level itself."""
        length = min(before + 1, len(self.recent))
        m = self.MIN_SEGMENT
        if length < 2 * m:
            return None
        x = np.fromiter(
            itertools.islice(self.recent, len(self.recent) - length, None), np.float64, length
        )
        c = np.cumsum(x)
        k = np.arange(m, length - m + 1)
        pre = c[k - 1] / k
        post = (c[-1] - c[k - 1]) / (length - k)
        score = (post - pre) * np.sqrt(k * (length - k) / length)
        i = int(np.argmax(score))
        return float(pre[i]), float(post[i]), int(length - k[i])

    def _fire(self, at_cut: bool, level: float | None = None, width: int | None = None) -> bool:
        assert self.baseline is not None
        est = self.estimation if level is None else level
        self.alarm = ConceptAlarm(
            est,
            self.baseline,
            est - self.baseline,
            int(self.adwin.width) if width is None else width,
            at_cut,
        )
        self.drifted = True
        self.watch = False
        return True

    def update(self, error: float) -> bool:
        """True when the error rate rose to drift (``alarm`` holds the details)."""
        reset = self.adwin.drift_detected  # river's ADWIN restarts on this update
        before = 0 if reset else int(self.adwin.width)
        previous = 0.0 if reset else float(self.adwin.estimation)
        self.adwin.update(error)  # type: ignore[no-untyped-call]
        self.recent.append(error)
        self.n += 1
        self.errors += error
        self.alarm = None
        if self.baseline is None:
            if self.n >= self.baseline_labels:
                self.baseline = self.errors / self.n
            return False
        low = sev.SCALES["error_rate"][0]
        est = self.estimation
        width = int(self.adwin.width)
        if self.adwin.drift_detected:
            self.cuts += 1
            if est <= previous or est < self.baseline:  # a fall: better, or drift over
                self.watch = False
                if self.drifted and est - self.baseline < low:
                    self.drifted = False
                return False
            if self.drifted:
                return False
            level, after = est, width
            split = self._change_point(before)
            if split is not None:
                pre, post, n_post = split
                self.baseline = min(self.baseline, pre)  # the level the change started from
                if post > level:
                    level, after = post, n_post
            if level - self.baseline >= low:
                return self._fire(at_cut=True, level=level, width=after)
            self.watch = True
            return False
        if self.drifted:
            return False
        if self.watch:
            rise = est - self.baseline
            if rise >= low and width >= self.MIN_WATCH_WIDTH:
                se = math.sqrt(max(est * (1.0 - est), 1e-6) / width)
                if rise >= self.WATCH_Z * se:
                    return self._fire(at_cut=False)
            return False
        if width >= self.baseline_labels and est < self.baseline:
            self.baseline = est  # a homogeneous window of a model that got better
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "errors": self.errors,
            "baseline": self.baseline,
            "drifted": self.drifted,
            "watch": self.watch,
            "cuts": self.cuts,
            "width": int(self.adwin.width),
            "recent": list(self.recent),
        }

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], delta: float, baseline_labels: int, replay: int
    ) -> ConceptDetector:
        c = cls(delta, baseline_labels, replay)
        c.recent.extend(float(e) for e in d["recent"])
        width = min(int(d["width"]), len(c.recent))
        for e in list(c.recent)[len(c.recent) - width :]:
            c.adwin.update(e)  # type: ignore[no-untyped-call]
        c.n = int(d["n"])
        c.errors = float(d["errors"])
        c.baseline = None if d["baseline"] is None else float(d["baseline"])
        c.drifted = bool(d["drifted"])
        c.watch = bool(d.get("watch", False))
        c.cuts = int(d.get("cuts", 0))
        return c


@dataclass
class ModelMonitor:
    version: str
    reference: ReferenceProfile
    window: WindowAccumulator
    numeric: dict[str, NumericDriftDetector] = field(default_factory=dict)
    categorical: dict[str, SlidingWindowChi2] = field(default_factory=dict)
    concept: ConceptDetector | None = None
    window_index: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    seq_signals: list[DriftSignal] = field(default_factory=list)
    #: features whose sequential detector fired in the current window (one signal each)
    alarmed: set[str] = field(default_factory=set)
    concept_signals: list[DriftSignal] = field(default_factory=list)
    last_report: WindowReport | None = None
    #: the monitor's first prediction (id or time): part of every signal id
    origin: str = ""


@dataclass
class DriftState:
    references: dict[tuple[str, str | None], ReferenceProfile] = field(default_factory=dict)
    monitors: dict[tuple[str, str], ModelMonitor] = field(default_factory=dict)
    warmup: dict[tuple[str, str], list[Observation]] = field(default_factory=dict)
    pending: OrderedDict[str, tuple[str, str, object, str]] = field(default_factory=OrderedDict)
    orphan_labels: int = 0
    #: partitions the worker reads (None: one ordered stream, arrival order = time order)
    sources: frozenset[int] | None = None
    #: latest prediction event time seen per partition
    watermarks: dict[int, datetime] = field(default_factory=dict)
    #: partitions read to their end (they cannot hold back a warm-up)
    drained: frozenset[int] = frozenset()
    #: warm-up predictions dropped because the buffer was full (latest first)
    warmup_dropped: int = 0
    #: the same per (model, version)
    warmup_dropped_by_version: dict[tuple[str, str], int] = field(default_factory=dict)


def _event_id(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _origin(o: Observation) -> str:
    """What identifies a monitor's stream: its first prediction (id, else time)."""
    return o.prediction_id if o.prediction_id is not None else o.event_time.isoformat()


def _by_time(o: Observation) -> datetime:
    return o.event_time


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 1e300


class DriftProcessor:
    def __init__(self, config: DriftConfig | None = None, worker: str = "w0") -> None:
        self.config = config or DriftConfig()
        self.worker = worker

    # ------------------------------------------------------------ references
    def set_reference(self, state: DriftState, reference: ReferenceProfile) -> None:
        """Install (or replace) a reference; monitors using the old one restart."""
        state.references[(reference.model, reference.version)] = reference
        for key in [k for k in state.monitors if k[0] == reference.model]:
            current = self.reference_for(state, *key)
            if current is not None and current.reference_id != (
                state.monitors[key].reference.reference_id
            ):
                del state.monitors[key]

    def reference_for(self, state: DriftState, model: str, version: str) -> ReferenceProfile | None:
        return state.references.get((model, version)) or state.references.get((model, None))

    def _monitor(self, state: DriftState, model: str, version: str) -> ModelMonitor | None:
        mon = state.monitors.get((model, version))
        if mon is not None:
            return mon
        ref = self.reference_for(state, model, version)
        if ref is None:
            return None
        mon = self.new_monitor(ref, version)
        state.monitors[(model, version)] = mon
        return mon

    def new_monitor(self, ref: ReferenceProfile, version: str) -> ModelMonitor:
        """A monitor of ``version`` against ``ref``: empty window, fresh detectors."""
        mon = ModelMonitor(version, ref, WindowAccumulator.empty(ref))
        if self.config.sequential:
            cols = list(ref.features.items())
            a = self.config.sequential_alpha / max(1, len(cols))
            h = self.config.horizon
            for name, prof in cols:
                if isinstance(prof, NumericProfile):
                    mon.numeric[name] = NumericDriftDetector(prof, alpha=a, horizon=h)
                elif isinstance(prof, CategoricalProfile):
                    mon.categorical[name] = SlidingWindowChi2(
                        prof, alpha=a, horizon=h, min_psi=sev.SCALES["psi"][0]
                    )
        return mon

    # ------------------------------------------------------------ partitions
    def assign(self, state: DriftState, partitions: Iterable[int]) -> None:
        """The partitions this worker reads from now on (their events carry them)."""
        state.sources = frozenset(partitions)
        state.watermarks = {p: t for p, t in state.watermarks.items() if p in state.sources}
        state.drained = state.drained & state.sources

    def caught_up(self, state: DriftState, partitions: Iterable[int]) -> list[Output]:
        """``partitions`` have been read to their end (nothing older can still arrive on
        them); warm-ups waiting only for them are learned now."""
        state.drained = frozenset(partitions)
        out: list[Output] = []
        for model, version in list(state.warmup):
            if self._warmup_ready(state, state.warmup[(model, version)]):
                out.extend(self._observe(state, model, version, []))
        return out

    def warming_up(self, state: DriftState) -> bool:
        return bool(state.warmup)

    def _low_watermark(self, state: DriftState) -> datetime | None:
        """Event time up to which every partition has been read; None when some
        partition holds it back without having delivered anything."""
        assert state.sources is not None
        waiting = state.sources - state.drained
        if not waiting:
            return datetime.max.replace(tzinfo=UTC)
        marks = [state.watermarks.get(p) for p in waiting]
        present = [m for m in marks if m is not None]
        return min(present) if len(present) == len(marks) else None

    def _warmup_ready(self, state: DriftState, buf: list[Observation]) -> bool:
        need = self.config.warmup_events
        if len(buf) < need:
            return False
        if state.sources is None:
            return True
        low = self._low_watermark(state)
        if low is None:
            return False
        cutoff = heapq.nsmallest(need, (o.event_time for o in buf))[-1]
        return cutoff <= low

    # ------------------------------------------------------------ processing
    def handle(
        self, event: PredictionLogged | LabelObserved | Observation, state: DriftState
    ) -> tuple[DriftState, list[Output]]:
        return state, self.handle_batch([event], state)

    def handle_batch(
        self,
        events: Sequence[PredictionLogged | LabelObserved | Observation],
        state: DriftState,
        partitions: Sequence[int] | None = None,
    ) -> list[Output]:
        """Process ``events`` in order; ``partitions`` (one per event) are where they
        came from, for the event-time warm-up (see the module docstring)."""
        outputs: list[Output] = []
        groups: dict[tuple[str, str], list[Observation]] = {}
        labels: list[LabelObserved] = []
        if partitions is not None:
            marks = state.watermarks
            for e, p in zip(events, partitions, strict=True):
                if not isinstance(e, LabelObserved):
                    t = e.event_time
                    if p not in marks or t > marks[p]:
                        marks[p] = t

        def flush_groups() -> None:
            for (model, version), obs in groups.items():
                outputs.extend(self._observe(state, model, version, obs))
            groups.clear()

        for e in events:
            if isinstance(e, LabelObserved):
                labels.append(e)
                continue
            obs = Observation.from_event(e) if isinstance(e, PredictionLogged) else e
            groups.setdefault((obs.model, obs.version), []).append(obs)
            if obs.prediction_id is not None and obs.prediction is not None:
                state.pending[obs.prediction_id] = (
                    obs.model,
                    obs.version,
                    obs.prediction,
                    obs.task,
                )
                if len(state.pending) > self.config.max_pending_predictions:
                    state.pending.popitem(last=False)
        flush_groups()
        for label in labels:
            outputs.extend(self._label(state, label))
        return outputs

    def run(
        self,
        events: Iterable[PredictionLogged | LabelObserved | Observation],
        state: DriftState | None = None,
        *,
        flush: bool = True,
    ) -> list[Output]:
        """Process ``events`` in order; with ``flush`` close the open windows at the end."""
        state = state or DriftState()
        outputs: list[Output] = []
        batch: list[PredictionLogged | LabelObserved | Observation] = []
        for e in events:
            batch.append(e)
            if len(batch) >= 1000:
                outputs += self.handle_batch(batch, state)
                batch = []
        outputs += self.handle_batch(batch, state)
        if flush:
            outputs += self.flush(state)
        return outputs

    def flush(self, state: DriftState) -> list[Output]:
        """Close every open window holding at least ``min_window_events`` events."""
        out: list[Output] = []
        for mon in state.monitors.values():
            if mon.window.n_events >= self.config.min_window_events:
                out.extend(self._close(mon))
        return out

    def _observe(
        self, state: DriftState, model: str, version: str, obs: list[Observation]
    ) -> list[Output]:
        out: list[Output] = []
        mon = self._monitor(state, model, version)
        if mon is None:
            need = self.config.warmup_events
            buf = state.warmup.setdefault((model, version), [])
            buf.extend(obs)
            if state.sources is not None:
                cap = max(need, need * self.config.warmup_buffer_factor)
                if len(buf) > cap:  # keep the earliest: only they can be the warm-up
                    buf.sort(key=_by_time)
                    dropped = len(buf) - cap
                    state.warmup_dropped += dropped
                    key = (model, version)
                    state.warmup_dropped_by_version[key] = (
                        state.warmup_dropped_by_version.get(key, 0) + dropped
                    )
                    del buf[cap:]
                    out.append(WarmupDropped(model, version, dropped, state.warmup_dropped))
            if not self._warmup_ready(state, buf):
                return out
            if state.sources is not None:
                buf.sort(key=_by_time)  # stable: ties keep their arrival order
            first, obs = buf[:need], buf[need:]
            ref = learn_reference(
                first, model, version, source=f"warm-up of {len(first)} predictions"
            )
            del state.warmup[(model, version)]
            state.references[(model, version)] = ref
            out.append(ReferenceLearned(ref))
            mon = self._monitor(state, model, version)
            assert mon is not None
        if obs and not mon.origin:
            mon.origin = _origin(obs[0])
        start = 0
        while start < len(obs):
            room = self.config.window_events - mon.window.n_events
            chunk = obs[start : start + room]
            start += len(chunk)
            out.extend(self._accumulate(mon, chunk))
            if mon.window.n_events >= self.config.window_events:
                out.extend(self._close(mon))
        return out

    def _accumulate(self, mon: ModelMonitor, obs: list[Observation]) -> list[Output]:
        ref = mon.reference
        out: list[Output] = []
        first = min(o.event_time for o in obs)
        last = max(o.event_time for o in obs)
        # windows fill in arrival order (partitions interleave): span = min .. max time
        mon.window_start = first if mon.window_start is None else min(mon.window_start, first)
        mon.window_end = last if mon.window_end is None else max(mon.window_end, last)
        mon.window.n_events += len(obs)
        dicts = [o.features for o in obs]
        plain = all(type(d) is dict for d in dicts)
        values: list[object]
        for name, prof in ref.features.items():
            if plain:  # C-level lookups: the hot loop of the processor
                values = list(map(dict.get, dicts, itertools.repeat(name)))  # type: ignore[arg-type]
            else:
                values = [d.get(name) for d in dicts]
            acc = mon.window.features[name]
            if isinstance(acc, NumericAccumulator) and isinstance(prof, NumericProfile):
                x = acc.add(prof, values)
                det = mon.numeric.get(name)
                if det is not None and x.size:
                    seen = det.ks.seen
                    for alarm in det.update_many(x):
                        if name not in mon.alarmed:
                            position = seen + alarm.index + 1
                            signal = self._numeric_alarm(mon, name, det, alarm, x.size, position)
                            if signal.drift_detected:  # an alarm graded NONE blocks nothing
                                mon.alarmed.add(name)
                                out.append(signal)
            elif isinstance(acc, CategoricalAccumulator) and isinstance(prof, CategoricalProfile):
                labels = acc.add(prof, values)
                chi = mon.categorical.get(name)
                if chi is not None and labels:
                    for alarm in chi.update_many(labels):
                        if name not in mon.alarmed:
                            signal = self._categorical_alarm(mon, name, chi, alarm, len(labels))
                            if signal.drift_detected:  # an alarm graded NONE blocks nothing
                                mon.alarmed.add(name)
                                out.append(signal)
        for name, prof in ref.outputs.items():
            acc = mon.window.outputs[name]
            if name == "prediction":
                values = [o.prediction for o in obs]
            else:
                values = [o.confidence for o in obs]
            add_values(acc, prof, values)
        mon.seq_signals.extend(s for s in out if isinstance(s, DriftSignal))
        return out

    def _signal(
        self,
        mon: ModelMonitor,
        *,
        kind: str,
        feature: str | None,
        test: str,
        statistic: float,
        p_value: float | None,
        p_adjusted: float | None = None,
        effect: float | None,
        threshold: float | None,
        detected: bool,
        severity: Severity,
        n_reference: int,
        n_current: int,
        tag: object,
    ) -> DriftSignal:
        ref = mon.reference
        start = mon.window_start or mon.window_end
        end = mon.window_end or start
        assert start is not None and end is not None
        return DriftSignal(
            # deterministic: the same window / alarm of the same stream gets the same id
            # after a restart (whatever the batching or the window's time span)
            event_id=_event_id(
                ref.model, mon.version, ref.reference_id, mon.origin, kind, feature, test, tag
            ),
            model=ref.model,
            version=mon.version,
            kind=kind,
            feature=feature,
            test=test,
            statistic=_finite(statistic),
            p_value=None if p_value is None else min(1.0, max(0.0, p_value)),
            p_value_adjusted=p_adjusted,
            effect_size=None if effect is None else _finite(effect),
            threshold=threshold,
            drift_detected=detected,
            severity=severity,
            window_start=start,
            window_end=end,
            n_reference=n_reference,
            n_current=n_current,
            reference_version=ref.reference_id,
        )

    def _numeric_alarm(
        self,
        mon: ModelMonitor,
        name: str,
        det: NumericDriftDetector,
        alarm: Alarm,
        n: int,
        position: int,
    ) -> DriftSignal:
        zmean, zsd = det.recent_shift()
        severity = max(
            sev.from_effect("mean_shift", zmean),
            sev.from_effect("log_scale", math.log(max(zsd, 1e-9))),
        )
        if alarm.test == "ks_window":
            severity = max(severity, sev.from_effect("ks", alarm.statistic))
        return self._alarm_signal(mon, name, alarm, zmean, severity, det.reference.n, n, position)

    def _categorical_alarm(
        self, mon: ModelMonitor, name: str, chi: SlidingWindowChi2, alarm: Alarm, n: int
    ) -> DriftSignal:
        # practical size: the PSI of the alarm window against the reference shares (the
        # window tests' scale); chi-square / window understated it (0.06 at threshold)
        psi = chi.window_psi(alarm.histogram)
        return self._alarm_signal(
            mon, name, alarm, psi, sev.from_effect("psi", psi), chi.reference.n, n, alarm.position
        )

    def _alarm_signal(
        self,
        mon: ModelMonitor,
        name: str,
        alarm: Alarm,
        effect: float,
        severity: Severity,
        n_reference: int,
        n: int,
        position: int,
    ) -> DriftSignal:
        return self._signal(
            mon,
            kind="data",
            feature=name,
            test=alarm.test,
            statistic=alarm.statistic,
            p_value=None,
            effect=effect,
            threshold=alarm.threshold,
            detected=severity >= Severity.LOW,
            severity=severity,
            n_reference=n_reference,
            n_current=n,
            tag=f"seq{alarm.test}-{position}",
        )

    def _close(self, mon: ModelMonitor) -> list[Output]:
        verdict = evaluate_window(mon.reference, mon.window, self.config.evaluation)
        out: list[Output] = []
        signals: list[DriftSignal] = []
        for r in verdict.results:
            if not r.drift_detected and r.test not in HEADLINE_TESTS:
                continue
            signals.append(self._result_signal(mon, r))
        assert mon.window_start is not None and mon.window_end is not None
        if mon.concept is not None and mon.concept.drifted and mon.concept.recovered():
            mon.concept.drifted = False
        report = WindowReport(
            model=mon.reference.model,
            version=mon.version,
            reference_id=mon.reference.reference_id,
            window_index=mon.window_index,
            window_start=mon.window_start,
            window_end=mon.window_end,
            verdict=verdict,
            sequential=tuple(mon.seq_signals),
            concept=tuple(mon.concept_signals),
            concept_drifted=mon.concept is not None and mon.concept.drifted,
        )
        out.extend(signals)
        out.append(report)
        mon.last_report = report
        mon.window = WindowAccumulator.empty(mon.reference)
        mon.window_index += 1
        mon.window_start = None
        mon.window_end = None
        mon.seq_signals = []
        mon.alarmed = set()
        mon.concept_signals = []
        return out

    def _result_signal(self, mon: ModelMonitor, r: TestResult) -> DriftSignal:
        return self._signal(
            mon,
            kind=r.kind,
            feature=r.feature,
            test=r.test,
            statistic=r.statistic,
            p_value=r.p_value,
            p_adjusted=r.p_adjusted,
            effect=r.effect_size,
            threshold=r.threshold,
            detected=r.drift_detected,
            severity=r.severity,
            n_reference=r.n_reference,
            n_current=r.n_current,
            tag=f"win{mon.window_index}",
        )

    def _label(self, state: DriftState, label: LabelObserved) -> list[Output]:
        found = state.pending.pop(label.prediction_id, None)
        if found is None:
            state.orphan_labels += 1
            return []
        model, version, prediction, task = found
        mon = self._monitor(state, model, version)
        if mon is None:
            return []
        if mon.concept is None:
            mon.concept = ConceptDetector(
                self.config.adwin_delta,
                self.config.concept_baseline_labels,
                self.config.adwin_replay,
            )
        error = _error(task, prediction, label.label, mon.reference.outputs.get("prediction"))
        if not mon.concept.update(error):
            return []
        alarm = mon.concept.alarm
        assert alarm is not None
        severity = sev.from_effect("error_rate", alarm.increase)
        if mon.window_end is None:
            mon.window_end = label.event_time
        signal = self._signal(
            mon,
            kind="concept",
            feature=None,
            test="adwin",
            statistic=alarm.estimate,
            p_value=None,
            effect=alarm.increase,
            threshold=alarm.baseline,
            detected=True,
            severity=severity,
            n_reference=mon.concept.n,
            n_current=alarm.width,
            tag=f"adwin{mon.concept.n}",
        )
        mon.concept_signals.append(signal)
        return [signal]


def _error(task: str, prediction: object, label: object, prof: object) -> float:
    """0/1 error of a class, or the absolute error of a regression output in units of
    twice the reference output's sigma, capped at 1 (never raises on a finite value)."""
    if task == "regression" and is_number(prediction) and is_number(label):
        p, y = safe_float(prediction), safe_float(label)
        if p is None or y is None:
            return 1.0
        scale = prof.std if isinstance(prof, NumericProfile) and prof.std > 0 else 1.0
        diff = abs(p - y)
        if not math.isfinite(diff):
            return 1.0
        return min(1.0, diff / (2 * scale))
    return 0.0 if category_of(prediction) == category_of(label) else 1.0


def learn_reference(
    obs: Sequence[Observation],
    model: str,
    version: str | None,
    *,
    source: str = "",
    categorical: Iterable[str] = (),
) -> ReferenceProfile:
    """A reference from observations (warm-up window or a file's rows)."""
    names: dict[str, None] = {}
    for o in obs:
        for k in o.features:
            names.setdefault(k, None)
    columns = {k: [o.features.get(k) for o in obs] for k in names}
    outputs: dict[str, list[object]] = {}
    if any(o.prediction is not None for o in obs):
        outputs["prediction"] = [o.prediction for o in obs]
    if any(o.confidence is not None for o in obs):
        outputs["confidence"] = [o.confidence for o in obs]
    classification = all(o.task == "classification" for o in obs)
    return build_profile(
        columns,
        model=model,
        version=version,
        outputs=outputs,
        categorical=categorical,
        source=source,
        classification=classification,
    )
