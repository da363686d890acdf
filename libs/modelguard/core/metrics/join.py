"""The delayed-label join of the metrics processor: predictions wait for their labels,
labels for their predictions, within event-time bounds; dedup, expiry and memory bounds.

The fates of predictions and labels are listed in :mod:`modelguard.core.metrics.processor`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any, TypeVar

from modelguard.contracts.fastdecode import LabelFields, PredictionFields
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.telemetry import TOTAL_STAGE
from modelguard.core.metrics.config import EVICT_FRACTION, SWEEP_INTERVAL_S
from modelguard.core.metrics.pairs import REGRESSION_CLASS, Pair, class_key, tracked_class
from modelguard.core.metrics.sketch import DEFAULT_ALPHA, default_bucket
from modelguard.core.metrics.state import ClosedWindow, PartitionState, Pending, bump
from modelguard.core.metrics.windowing import WindowingMixin

_V = TypeVar("_V")


class JoinMixin(WindowingMixin):
    """Folds predictions and labels into a partition's state (see the module docstring),
    into the windows of :class:`~modelguard.core.metrics.windowing.WindowingMixin`."""

    # -- predictions -----------------------------------------------------------------
    def _prediction(
        self, f: PredictionFields, t: float, state: PartitionState, out: list[ClosedWindow]
    ) -> None:
        pid, model, version, _, task, prediction, probabilities, latency_ms, stages, error = f
        if (
            pid in state.pending or pid in state.done or pid in state.expired
        ) and self._known_prediction(state, pid, t):
            bump(state.duplicates, "prediction")
            return
        if state.max_prediction_time is None or t > state.max_prediction_time:
            state.max_prediction_time = t
        key = (model, version)
        vs = state.versions.get(key)
        if vs is None:
            vs = state.version(model, version)
        vs.n_predictions += 1
        predicted: str | None = None
        counts = vs.predicted
        if error is not None:
            bump(vs.errors, error)
        else:
            if task == "classification":
                predicted = prediction if type(prediction) is str else class_key(prediction)
                seen = predicted
            else:  # served regression predictions count too (model_predictions_total)
                seen = REGRESSION_CLASS
            n = counts.get(seen)
            if n is None:
                seen = tracked_class(counts, seen)
                if predicted is not None:
                    predicted = seen
                n = counts.get(seen, 0)
            counts[seen] = n + 1
        latency_s = latency_ms / 1000.0
        h = vs.durations.get(TOTAL_STAGE)
        if h is None:
            h = vs.duration(TOTAL_STAGE)
        h.counts[bisect_left(h.bounds, latency_s)] += 1  # FixedHistogram.add, inlined
        h.total += latency_s
        if stages:
            for stage, ms in stages.items():
                vs.duration(stage).add(ms / 1000.0)
        agg = self._window(state, t, key, "prediction")
        if agg is not None:  # deferred, folded in at the end of the batch (settle)
            deferred = agg.deferred_predictions
            if not deferred and not agg.deferred_pairs:
                self._unsettled.append(agg)
            bucket = default_bucket(latency_ms) if agg.latency_ms.alpha == DEFAULT_ALPHA else None
            deferred.append((predicted, latency_ms, bucket, error))
        if error is not None or prediction is None:
            self._remember(state, state.done, pid, t + self._forget_after)
            return
        pending: Pending = (model, version, task, prediction, probabilities, t)
        orphan = state.orphans.get(pid) if state.orphans else None
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
        self, f: LabelFields, t: float, state: PartitionState, out: list[ClosedWindow]
    ) -> None:
        if state.max_label_time is None or t > state.max_label_time:
            state.max_label_time = t
        pid, label_model, label, _ = f
        cfg = self.config
        pending = state.pending.get(pid)
        if pending is not None:
            t_pred = pending[5]
            if t_pred - cfg.orphan_grace_s < t < t_pred + cfg.label_ttl_s:
                del state.pending[pid]
                self._join(state, pid, pending, label, t, out)
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
                bump(state.duplicates, "label")
                return
            at = state.expired.get(pid)
            if at is not None and t < at:
                self._after_ttl(state, pid, t)
                return
        orphan = state.orphans.get(pid)
        if orphan is not None:
            if t < orphan[2] + cfg.orphan_grace_s:
                bump(state.duplicates, "label")
                return
            del state.orphans[pid]  # the first one's grace ended before t: an orphan
            bump(state.orphan_labels, orphan[1] or "")
        if t + cfg.orphan_grace_s <= state.watermark:
            bump(state.orphan_labels, label_model or "")  # its grace period is already over
        else:
            state.orphans[pid] = (label, label_model, t)
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
            bump(state.overflow, "prediction")
            self._expire(state, pid, p)

    def _evict_orphans(self, state: PartitionState) -> None:
        for pid in _oldest(state.orphans, self.config.max_orphans):
            o = state.orphans.pop(pid)
            bump(state.overflow, "label")
            bump(state.orphan_labels, o[1] or "")

    def _remember(self, state: PartitionState, ids: dict[str, float], pid: str, at: float) -> None:
        ids[pid] = at
        if len(ids) > self.config.max_remembered:
            for old in _oldest(ids, self.config.max_remembered):
                del ids[old]
                bump(state.overflow, "id")

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
        done = state.done
        done[pid] = t_pred + self._forget_after
        if len(done) > self.config.max_remembered:  # (_remember, inlined)
            self._remember(state, done, pid, t_pred + self._forget_after)
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
        if agg is not None:  # deferred, folded in at the end of the batch (settle)
            if not agg.deferred_pairs and not agg.deferred_predictions:
                self._unsettled.append(agg)
            agg.deferred_pairs.append(pair)
        vs.push(pair, self.config.last_n)  # the last-N window (aggregated when read)
        vs.count_window_start = min(vs.count_window_start, t)
        vs.since_count_window += 1
        if vs.since_count_window >= self.config.last_n:
            self._emit_count_window(state, model, version, vs, t, out)

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
            bump(state.orphan_labels, state.orphans.pop(pid)[1] or "")
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
