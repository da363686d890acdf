"""The drift processor: predictions and labels in, drift signals and window reports out.

``handle(event, state) -> (state, outputs)`` and ``run(events) -> outputs``, the same code
over Kafka (the drift service), over files (``modelguard drift``) and in tests.

Per model version it keeps, against the version's reference (or the model's):

* window tests over count windows of ``window_events`` predictions (see
  :mod:`~modelguard.core.drift.evaluation`):
  at each window close one :class:`DriftSignal` per tested column, the quality signals
  that fired, and the dataset signal (drifted share), plus a :class:`WindowReport`;
* sequential detectors on every event (see :mod:`~modelguard.core.drift.sequential`):
  an alarm is a signal at once, without waiting for the window to close. Their false-alarm budget
  ``sequential_alpha`` per ``horizon`` events is for the whole model and split evenly
  across its features (Bonferroni), so adding features does not add false alarms;
* concept drift on the error stream (labels joined to their prediction by id; labels
  are co-partitioned with predictions, ADR 0002): :mod:`~modelguard.core.drift.concept`;
  a change counts only when the error rate went *up* by at least the LOW effect.
  The join and the error stream are a function of the prediction stream and the label
  stream alone, not of how a reader interleaves them (a replay after kill -9 reads them
  differently; issue 11 #9). A *prediction clock* runs over the predictions (running max
  of their event times, advancing by at most ``clock_step_s`` per prediction) and each
  waiting prediction remembers the clock right after it (``clock_at``). A label joins
  its prediction iff the prediction has not been joined yet and ``clock_at <= label
  time + concept_label_grace_s``. Labels resolve one at a time in label order: the first
  unresolved label waits for its prediction (labels behind it wait too) and becomes an
  orphan once the clock passes its deadline (its prediction could not join any more).
  Joined errors queue per version in label order and feed its detector as soon as the
  version's monitor exists (a label is not lost to a warm-up still running). A
  detector's recovery check runs every ``window_events`` of its labels. Exact while no
  bound is hit (``max_pending_predictions``, ``max_waiting_labels``,
  ``max_concept_backlog``: each counted in the state) and for the stream of one
  partition (several partitions merged into one state follow the read order, as the
  windows do: the drift service therefore keeps one state per partition, ADR 0015).

A version without any reference learns one from its first ``warmup_events``
predictions *by event time* (output :class:`ReferenceLearned`); the ``adopt`` hook
decides, at that point, which reference the version is tested against from there on
(the drift service: the one published first, ADR 0015). A caller merging several
partitions into one state passes each event's partition and the set of partitions it
reads (:meth:`DriftProcessor.assign`, :meth:`DriftProcessor.caught_up`);
:mod:`~modelguard.core.drift.warmup` says when a warm-up is final.

The processor sees what one worker sees (its partitions: a random share of each
model's traffic, because keys are prediction ids); window accumulators are mergeable
if a later stage wants to combine workers exactly.

The pieces live in their own modules: settings (:mod:`~modelguard.core.drift.config`),
inputs and outputs (:mod:`~modelguard.core.drift.events`), state
(:mod:`~modelguard.core.drift.state`), warm-up (:mod:`~modelguard.core.drift.warmup`),
signal building (:mod:`~modelguard.core.drift.signals`); this module wires them.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter

import numpy as np

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import severity as sev
from modelguard.core.drift import signals, warmup
from modelguard.core.drift.accumulators import (
    CategoricalAccumulator,
    FloatArray,
    IntArray,
    NumericAccumulator,
    WindowAccumulator,
    add_values,
    numeric_columns,
)
from modelguard.core.drift.concept import ConceptAlarm, ConceptDetector, prediction_error
from modelguard.core.drift.config import DriftConfig
from modelguard.core.drift.evaluation import evaluate_window
from modelguard.core.drift.events import (
    HEADLINE_TESTS,
    Observation,
    Observations,
    Output,
    ReferenceLearned,
    WarmupDropped,
    WindowReport,
)
from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
)
from modelguard.core.drift.sequential import (
    NumericDriftDetector,
    NumericScan,
    Scanned,
    SlidingWindowChi2,
)
from modelguard.core.drift.state import DriftState, Joined, ModelMonitor
from modelguard.core.drift.warmup import learn_reference
from modelguard.errors import InvariantError

__all__ = [
    "HEADLINE_TESTS",
    "ConceptAlarm",
    "ConceptDetector",
    "DriftConfig",
    "DriftProcessor",
    "DriftState",
    "ModelMonitor",
    "Observation",
    "Observations",
    "Output",
    "ReferenceLearned",
    "WarmupDropped",
    "WindowReport",
    "learn_reference",
]


_MODEL_VERSION = attrgetter("model", "version")
_ID = attrgetter("prediction_id")
_TIME = attrgetter("event_time")
#: what a prediction leaves for its label: (model, version, prediction, task)
_PENDING = attrgetter("model", "version", "prediction", "task")
_VALUE = itemgetter(2)
_PREDICTIONS = frozenset({PredictionLogged, Observation})


#: what a learned warm-up reference becomes (see :class:`DriftProcessor`)
Adopt = Callable[[ReferenceProfile], ReferenceProfile]


class DriftProcessor:
    """``adopt`` decides, at the point in the stream where a version's warm-up is
    learned, which reference the version is tested against from there on: given the
    learned one it returns the one to install (default: the learned one). The drift
    service shares it (the first one published wins: every partition that learns later
    installs the published one there, so a replay does the same; ADR 0015); an offline
    recomputation passes the reference that was published."""

    def __init__(
        self, config: DriftConfig | None = None, worker: str = "w0", *, adopt: Adopt | None = None
    ) -> None:
        self.config = config or DriftConfig()
        self.worker = worker
        self.adopt = adopt

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
        if state.joined:
            out.extend(self._feed(state))  # labels joined while those warm-ups ran
        return out

    def warming_up(self, state: DriftState) -> bool:
        return bool(state.warmup)

    def _warmup_ready(self, state: DriftState, buf: list[Observation]) -> bool:
        return warmup.ready(state, buf, self.config.warmup_events)

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
        came from, for the event-time warm-up (see the module docstring).

        Predictions are grouped by model version and handed on as columns
        (:class:`Observations`), labels after them (no object is built per event): the
        concept path's outputs do not depend on how labels and predictions interleave,
        so this reordering changes nothing (see the module docstring)."""
        outputs: list[Output] = []
        if partitions is not None:
            warmup.advance_watermarks(state, events, partitions)
        kinds = set(map(type, events))
        labels: list[LabelObserved] = []
        preds: Sequence[PredictionLogged | Observation]
        if kinds <= _PREDICTIONS:
            preds = events  # type: ignore[assignment]
        else:
            labels = [e for e in events if isinstance(e, LabelObserved)]
            preds = [e for e in events if not isinstance(e, LabelObserved)]
        keys = list(map(_MODEL_VERSION, preds))
        groups: dict[tuple[str, str], Sequence[PredictionLogged | Observation]]
        if keys and keys.count(keys[0]) == len(keys):
            groups = {keys[0]: preds}  # the usual batch: one model version
        else:
            lists: dict[tuple[str, str], list[PredictionLogged | Observation]] = {}
            for key, e in zip(keys, preds, strict=True):
                lists.setdefault(key, []).append(e)
            groups = dict(lists)
        validated = kinds <= {PredictionLogged, LabelObserved}
        self._remember(state, preds, validated)
        for (model, version), items in groups.items():
            outputs.extend(self._observe(state, model, version, Observations(items, validated)))
        if labels:
            state.waiting.extend((e.prediction_id, e.label, e.event_time) for e in labels)
        if state.waiting:
            self._resolve(state)
        if state.joined:
            outputs.extend(self._feed(state))
        return outputs

    def _remember(
        self,
        state: DriftState,
        preds: Sequence[PredictionLogged | Observation],
        validated: bool,
    ) -> None:
        """Advance the prediction clock over ``preds`` and keep (model, version,
        prediction, task, clock_at) of each prediction, by id, for its label; at most
        ``max_pending_predictions`` (the oldest go first, counted)."""
        pending, cap = state.pending, self.config.max_pending_predictions
        clocks = self._advance_clock(state, list(map(_TIME, preds)))
        ids = list(map(_ID, preds))
        # (model, version, prediction, task, clock_at)
        kept = [(*k, c) for k, c in zip(map(_PENDING, preds), clocks, strict=True)]
        # contract-validated events hold plain values: ``None in`` is exact on them
        if (
            validated
            and len(pending) + len(ids) <= cap
            and None not in ids
            and None not in map(_VALUE, kept)
        ):
            pending.update(zip(ids, kept, strict=True))
            return
        for pid, item in zip(ids, kept, strict=True):
            if pid is not None and item[2] is not None:
                pending[pid] = item
                if len(pending) > cap:
                    pending.popitem(last=False)
                    state.pending_evicted += 1

    def _advance_clock(self, state: DriftState, times: Sequence[datetime]) -> list[datetime]:
        """The prediction clock right after each of ``times`` (predictions in stream
        order): their running max, advancing by at most ``clock_step_s`` per prediction."""
        step = timedelta(seconds=self.config.clock_step_s)
        clock = state.clock
        out: list[datetime] = []
        for t in times:
            if clock is None:
                clock = t
            elif t > clock:
                clock = t if t - clock <= step else clock + step
            out.append(clock)
        state.clock = clock
        return out

    def _resolve(self, state: DriftState, *, final: bool = False) -> None:
        """Resolve waiting labels in label order: the first joins its prediction (queued
        for its version's concept detector), is an orphan, or waits (and the rest with
        it). A function of the two streams whatever their interleaving: a label joins
        iff its prediction's ``clock_at`` is at most its deadline (its time + grace),
        and it is an orphan only when that can no longer happen (or, ``final``, at the
        end of the input)."""
        grace = timedelta(seconds=self.config.concept_label_grace_s)
        waiting, pending = state.waiting, state.pending
        while waiting:
            pid, label, t = waiting[0]
            deadline = t + grace
            found = pending.get(pid)
            if found is not None and found[4] <= deadline:
                del pending[pid]
                model, version, prediction, task, _ = found
                queue = state.joined.setdefault((model, version), deque())
                queue.append((task, prediction, label, t))
                if len(queue) > self.config.max_concept_backlog:
                    queue.popleft()
                    state.concept_backlog_dropped += 1
            elif final or found is not None or (state.clock is not None and state.clock > deadline):
                state.orphan_labels += 1  # its prediction came (or comes) too late
            elif len(waiting) > self.config.max_waiting_labels:
                state.orphan_labels += 1
                state.label_overflow += 1
            else:
                return
            waiting.popleft()

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
        """The end of the input: resolve every waiting label (one whose prediction has
        not come is an orphan: nothing more will come) and feed the joined ones, then
        close every open window holding at least ``min_window_events`` events."""
        out: list[Output] = []
        if state.waiting:
            self._resolve(state, final=True)
        if state.joined:
            out.extend(self._feed(state))
        for mon in state.monitors.values():
            if mon.window.n_events >= self.config.min_window_events:
                out.extend(self._close(mon))
        return out

    def _observe(
        self,
        state: DriftState,
        model: str,
        version: str,
        obs: Observations | list[Observation],
    ) -> list[Output]:
        out: list[Output] = []
        if not isinstance(obs, Observations):
            obs = Observations(obs)
        mon = self._monitor(state, model, version)
        if mon is None:
            buf, dropped = warmup.buffer(state, model, version, obs.observations(), self.config)
            if dropped is not None:
                out.append(dropped)
            if not self._warmup_ready(state, buf):
                return out
            ref, rest = warmup.learn(state, model, version, self.config.warmup_events)
            if self.adopt is not None:
                # before any event after the warm-up is tested: the batch's cut does not
                # decide which reference they meet
                state.references[(model, version)] = self.adopt(ref)
            obs = Observations(rest)
            out.append(ReferenceLearned(ref))
            mon = self._monitor(state, model, version)
            if mon is None:
                raise InvariantError(f"{model}/{version}: no monitor after its warm-up")
        if len(obs) and not mon.origin:
            mon.origin = signals.origin(obs[0], state.stream)
        start = 0
        while start < len(obs):
            room = self.config.window_events - mon.window.n_events
            chunk = obs.part(start, start + room)
            start += len(chunk)
            out.extend(self._accumulate(mon, chunk))
            if mon.window.n_events >= self.config.window_events:
                out.extend(self._close(mon))
        return out

    def _accumulate(self, mon: ModelMonitor, obs: Observations) -> list[Output]:
        ref = mon.reference
        # sequential alarms, by the position in ``obs`` of the event that raised them
        # (then feature order): the stream's order, whatever the batching
        alarms: list[tuple[int, DriftSignal]] = []
        span0 = (mon.window_start, mon.window_end)  # the window before this chunk
        times = obs.event_times()
        first, last = min(times), max(times)
        # windows fill in arrival order (partitions interleave): span = min .. max time
        mon.window_start = first if mon.window_start is None else min(mon.window_start, first)
        mon.window_end = last if mon.window_end is None else max(mon.window_end, last)
        mon.window.n_events += len(obs)
        dicts = obs.features()
        plain = all(type(d) is dict for d in dicts)
        # every numeric feature's values at once (one row per feature), or None
        columns = numeric_columns(dicts, ref.numeric_features, obs.validated)
        binned, scanned = self._binned(mon, columns)
        values: list[object]
        for name, prof in ref.features.items():
            acc = mon.window.features[name]
            if isinstance(acc, NumericAccumulator) and isinstance(prof, NumericProfile):
                det = mon.numeric.get(name)
                bins = None
                # event index of each value the detector sees (None: the slow path,
                # where the accumulator's ``add`` decides which values count)
                finite_at: Sequence[int] | None = None
                if name in binned:
                    x, bins = binned[name]
                    acc.add_finite(prof, x, bins, len(dicts) - x.size)
                    finite_at = _kept_indices(columns, ref.numeric_features.index(name), x.size)
                else:
                    values = [d.get(name) for d in dicts]
                    x = acc.add(prof, values)
                if det is not None and x.size:
                    seen = det.ks.seen
                    before = det.ks.window_bins().copy()
                    fired = det.update_many(x, bins, scanned=scanned.get(name)).alarms
                    for alarm in fired:
                        if name not in mon.alarmed:
                            at = (
                                finite_at[alarm.index]
                                if finite_at is not None
                                else _kept_at(_numeric_kept(prof), values, alarm.index)
                            )
                            signal = signals.numeric_alarm(
                                mon,
                                name,
                                det,
                                alarm,
                                det.window_at(before, x, fired, alarm.index),
                                seen + alarm.index + 1,
                                _span_at(span0, times, at),
                            )
                            if signal.drift_detected:  # an alarm graded NONE blocks nothing
                                mon.alarmed.add(name)
                                alarms.append((at, signal))
            elif isinstance(acc, CategoricalAccumulator) and isinstance(prof, CategoricalProfile):
                if plain:  # C-level lookups
                    values = list(map(dict.get, dicts, itertools.repeat(name)))  # type: ignore[arg-type]
                else:
                    values = [d.get(name) for d in dicts]
                labels = acc.add(prof, values)
                chi = mon.categorical.get(name)
                if chi is not None and labels:
                    for alarm in chi.update_many(labels).alarms:
                        if name not in mon.alarmed:
                            at = _kept_at(_categorical_kept(prof), values, alarm.index)
                            signal = signals.categorical_alarm(
                                mon, name, chi, alarm, _span_at(span0, times, at)
                            )
                            if signal.drift_detected:  # an alarm graded NONE blocks nothing
                                mon.alarmed.add(name)
                                alarms.append((at, signal))
        for name, prof in ref.outputs.items():
            acc = mon.window.outputs[name]
            values = obs.predictions() if name == "prediction" else list(obs.confidences())
            add_values(acc, prof, values)
        alarms.sort(key=lambda a: a[0])  # stable: features in reference order at one event
        out: list[Output] = [s for _, s in alarms]
        mon.seq_signals.extend(s for _, s in alarms)
        return out

    def _binned(
        self, mon: ModelMonitor, columns: FloatArray | None
    ) -> tuple[dict[str, tuple[FloatArray, IntArray]], dict[str, Scanned]]:
        """Per numeric feature its finite values and their reference bins (from
        :func:`numeric_columns`; none when it gave up), and, when every numeric feature
        has a detector and a full batch, each detector's part of a :class:`NumericScan`
        of them all (their batch update then skips what the scan proved quiet)."""
        if columns is None:
            return {}, {}
        ref = mon.reference
        finite = bool(np.isfinite(columns).all())
        binned: dict[str, tuple[FloatArray, IntArray]] = {}
        dets: list[NumericDriftDetector] = []
        for name, x in zip(ref.numeric_features, columns, strict=True):
            prof = ref.features[name]
            if not isinstance(prof, NumericProfile):
                raise InvariantError(f"numeric feature {name!r} has a {type(prof).__name__}")
            det = mon.numeric.get(name)
            if not finite:
                x = x[np.isfinite(x)]
            binned[name] = (x, prof.bin_of(x) if det is None else det.bins(x))
            if det is not None:
                dets.append(det)
        names = ref.numeric_features
        stackable = (
            finite
            and columns.shape[1] > 0
            and len(dets) == len(names)
            and all(d.ks._hist.n_bins > 1 for d in dets)
            and len({(d.ks.window, d.ks.stride) for d in dets}) == 1
        )
        if not stackable:
            return binned, {}
        scan = NumericScan(dets, np.stack([binned[n][1] for n in names]))
        return binned, {n: scan.part(i) for i, n in enumerate(names)}

    def _close(self, mon: ModelMonitor) -> list[Output]:
        verdict = evaluate_window(mon.reference, mon.window, self.config.evaluation)
        out: list[Output] = []
        found: list[DriftSignal] = []
        for r in verdict.results:
            if not r.drift_detected and r.test not in HEADLINE_TESTS:
                continue
            found.append(signals.result_signal(mon, r))
        if mon.window_start is None or mon.window_end is None:
            raise InvariantError(f"{mon.reference.model}/{mon.version}: closing an empty window")
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
        out.extend(found)
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

    def _feed(self, state: DriftState) -> list[Output]:
        """Feed the joined labels of every version whose monitor exists (and has seen
        a prediction) to its concept detector, in label order."""
        out: list[Output] = []
        for key in list(state.joined):
            mon = state.monitors.get(key)
            if mon is None or not mon.origin:
                continue  # still warming up: the labels wait (bounded)
            for joined in state.joined.pop(key):
                out.extend(self._concept(mon, joined))
        return out

    def _concept(self, mon: ModelMonitor, joined: Joined) -> list[Output]:
        task, prediction, label, at = joined
        if mon.concept is None:
            mon.concept = ConceptDetector(
                self.config.adwin_delta,
                self.config.concept_baseline_labels,
                self.config.adwin_replay,
            )
        det = mon.concept
        error = prediction_error(task, prediction, label, mon.reference.outputs.get("prediction"))
        out: list[Output] = []
        if det.update(error).drift_detected:
            alarm = det.alarm
            if alarm is None:
                raise InvariantError("the concept detector fired without an alarm")
            signal = signals.concept_alarm(mon, alarm, det.n, at)
            mon.concept_signals.append(signal)
            out.append(signal)
        if det.n % self.config.window_events == 0:
            det.settle()  # on the label stream's cadence, not at window closes
        return out


def _kept_at(kept: Callable[[Sequence[object]], int], values: Sequence[object], k: int) -> int:
    """The index in ``values`` of the ``k``-th (0-based) value an accumulator keeps:
    ``add`` drops missing, non-finite and wrongly typed values, so an alarm's index among
    the values a detector saw is not its event's index. ``kept(prefix)`` is how many of a
    prefix ``add`` keeps (the accumulator stays the one home of that rule); bisection,
    only when an alarm fires."""
    return bisect.bisect_left(range(len(values)), k + 1, key=lambda m: kept(values[: m + 1]))


def _numeric_kept(prof: NumericProfile) -> Callable[[Sequence[object]], int]:
    return lambda values: int(NumericAccumulator.empty(prof).add(prof, values).size)


def _categorical_kept(prof: CategoricalProfile) -> Callable[[Sequence[object]], int]:
    return lambda values: len(CategoricalAccumulator.empty(prof).add(prof, values))


def _kept_indices(columns: FloatArray | None, row: int, kept: int) -> Sequence[int]:
    """The event index of each finite value of ``columns[row]`` (all of them when all
    ``kept`` values of the row are finite): what the fast path feeds the detector."""
    if columns is None or columns.shape[1] == kept:
        return range(kept)
    return np.flatnonzero(np.isfinite(columns[row])).tolist()


def _span_at(
    span0: tuple[datetime | None, datetime | None], times: Sequence[datetime], at: int
) -> tuple[datetime, datetime]:
    """The window's (start, end) right after event ``at`` of a batch whose event times
    are ``times``: ``span0`` (the window before the batch) widened by ``times[: at + 1]``
    (arrival order, so a later event of the batch with an earlier time does not count
    yet)."""
    span = [*times[: at + 1], *(t for t in span0 if t is not None)]
    return min(span), max(span)
