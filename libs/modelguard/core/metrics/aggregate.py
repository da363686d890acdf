"""The mergeable aggregate of one model version over one window, and its metrics.

An :class:`Aggregate` holds only sums, counts, a confusion matrix and fixed-bin
histograms, so the aggregate of a whole stream equals the :meth:`Aggregate.merge` of the
aggregates of any split of it (partitions, workers, time slices). Labelled pairs are
first turned into a :class:`Pair` (their contribution), which can also be *removed*
(``sign=-1``): that is how the last-N window slides exactly.

Metrics (:func:`compute_metrics`) follow scikit-learn's definitions:

* ``accuracy``; ``precision``/``recall``/``f1`` are binary (positive class ``"1"`` or
  ``"true"``) when the classes seen are at most two and include it, else macro averages
  over the union of labels and predictions (``zero_division=0``); ``f1_macro`` always.
* ``auc``: ROC-AUC (binary, or one-vs-rest macro over the label classes) from
  ``AUC_BINS`` fixed score bins; pairs whose scores share a bin count as ties, so the
  error is at most half the share of (positive, negative) pairs in a common bin
  (:func:`auc_tie_bound`).
* ``log_loss`` (probabilities clipped to ``[1e-15, 1]``), ``brier`` (binary: mean of
  ``(p_pos - y)^2``; multi-class: mean of ``sum_c (p_c - y_c)^2``).
* ``mae``, ``rmse``, ``mape`` (``|y - y_hat| / max(|y|, eps)``, as scikit-learn).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelguard.core.metrics.pairs import (
    AUC_BINS,
    CLASS_SHARE_PREFIX,
    LOG_LOSS_EPS,
    MAPE_EPS,
    MAX_AUC_CLASSES,
    MAX_METRIC_CLASS_LENGTH,
    MAX_TRACKED_CLASSES,
    OTHER_CLASS,
    REGRESSION_CLASS,
    Pair,
    class_key,
    metric_class_key,
    score_bin,
    tracked_class,
)
from modelguard.core.metrics.scoring import (
    POSITIVE_CLASSES,
    auc_tie_bound,
    compute_metrics,
    positive_class,
    roc_auc,
)
from modelguard.core.metrics.sketch import (
    DEFAULT_ALPHA,
    TOTAL_SCALE,
    ExactSum,
    LogSketch,
)

__all__ = [  # the pair and scoring names stay importable from here (older import paths)
    "AUC_BINS",
    "CLASS_SHARE_PREFIX",
    "LOG_LOSS_EPS",
    "MAPE_EPS",
    "MAX_AUC_CLASSES",
    "MAX_METRIC_CLASS_LENGTH",
    "MAX_TRACKED_CLASSES",
    "OTHER_CLASS",
    "POSITIVE_CLASSES",
    "REGRESSION_CLASS",
    "Aggregate",
    "Pair",
    "auc_tie_bound",
    "class_key",
    "compute_metrics",
    "merge_all",
    "metric_class_key",
    "positive_class",
    "roc_auc",
    "score_bin",
    "tracked_class",
]

_K = TypeVar("_K", str, int)


def _add_counts(into: dict[_K, int], other: dict[_K, int], sign: int = 1) -> None:
    for k, v in other.items():
        n = into.get(k, 0) + sign * v
        if n:
            into[k] = n
        else:
            into.pop(k, None)


@dataclass(slots=True)
class Aggregate:
    """Mergeable state of one model version over one window (see module docstring)."""

    n_predictions: int = 0
    n_errors: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    predicted: dict[str, int] = field(default_factory=dict)
    latency_ms: LogSketch = field(default_factory=LogSketch)
    n_labelled: int = 0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    n_prob: int = 0
    n_prob_binary: int = 0
    log_loss_sum: ExactSum = field(default_factory=ExactSum)
    brier_sum: ExactSum = field(default_factory=ExactSum)
    auc: dict[str, list[dict[int, int]]] = field(default_factory=dict)
    n_regression: int = 0
    abs_err_sum: ExactSum = field(default_factory=ExactSum)
    sq_err_sum: ExactSum = field(default_factory=ExactSum)
    ape_sum: ExactSum = field(default_factory=ExactSum)
    n_expired: int = 0
    label_delay_s: LogSketch = field(default_factory=LogSketch)
    #: Contributions noted but not folded in yet (:meth:`settle`; never serialised):
    #: served predictions as (class or None, latency ms, latency bucket, error type),
    #: and labelled pairs. Folding many at once costs a fraction of one-by-one adds.
    deferred_predictions: list[tuple[str | None, float, int | None, str | None]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    deferred_pairs: list[Pair] = field(default_factory=list, init=False, repr=False, compare=False)

    # -- updates ---------------------------------------------------------------------
    def add_prediction(
        self,
        predicted_class: str | None,
        latency_ms: float,
        error_type: str | None,
        latency_bucket: int | None = None,
    ) -> None:
        """One served prediction (``predicted_class`` None for regression/errors)."""
        self.n_predictions += 1
        self.latency_ms.add_bucket(
            self.latency_ms.bucket(latency_ms) if latency_bucket is None else latency_bucket,
            latency_ms,
        )
        if error_type is not None:
            self.n_errors += 1
            self.errors[error_type] = self.errors.get(error_type, 0) + 1
        elif predicted_class is not None:
            self.predicted[predicted_class] = self.predicted.get(predicted_class, 0) + 1

    def add_pair(self, pair: Pair, sign: int = 1) -> None:
        """Add (``sign=1``) or remove (``sign=-1``) one labelled prediction."""
        (
            task,
            label,
            predicted,
            log_loss,
            brier,
            n_classes,
            bins,
            abs_err,
            sq_err,
            ape,
            delay,
            bucket,
        ) = pair
        if self.label_delay_s.alpha == DEFAULT_ALPHA:
            self.label_delay_s.add_bucket(bucket, delay, sign)
        else:
            self.label_delay_s.add(delay, sign)
        if task == "r":
            self.n_regression += sign
            self.abs_err_sum.add(sign * abs_err)
            self.sq_err_sum.add(sign * sq_err)
            self.ape_sum.add(sign * ape)
            return
        self.n_labelled += sign
        confusion = self.confusion
        row = confusion.get(label)
        if row is None:
            row = confusion[label] = {}
        n = row.get(predicted, 0) + sign
        if n:
            row[predicted] = n
        else:
            del row[predicted]
            if not row:
                del confusion[label]
        if log_loss is not None and brier is not None:
            self.n_prob += sign
            if n_classes == 2:
                self.n_prob_binary += sign
            self.log_loss_sum.add(sign * log_loss)
            self.brier_sum.add(sign * brier)
            auc = self.auc
            for c, b in bins:
                hists = auc.get(c)
                if hists is None:
                    hists = auc[c] = [{}, {}]
                h = hists[0] if c == label else hists[1]
                m = h.get(b, 0) + sign
                if m:
                    h[b] = m
                else:
                    del h[b]
                    if not hists[0] and not hists[1]:
                        del auc[c]

    def settle(self) -> None:
        """Fold the deferred contributions in: afterwards the aggregate equals (``to_dict``
        and metrics) adding each with :meth:`add_prediction` / :meth:`add_pair` in turn
        (every part is a count, an integer sum or an exact sum, so order never matters)."""
        preds = self.deferred_predictions
        if preds:
            self.deferred_predictions = []
            if len(preds) == 1:
                c, x, b, e = preds[0]
                self.add_prediction(c, x, e, b)
            else:
                self._fold_predictions(preds)
        pairs = self.deferred_pairs
        if pairs:
            self.deferred_pairs = []
            if len(pairs) <= 2:
                for p in pairs:
                    self.add_pair(p)
            else:
                self.merge(Aggregate.of_pairs(pairs))

    def _fold_predictions(
        self, preds: list[tuple[str | None, float, int | None, str | None]]
    ) -> None:
        self.n_predictions += len(preds)
        sketch = self.latency_ms
        if sketch.alpha == DEFAULT_ALPHA:
            buckets: Counter[int | None] = Counter([p[2] for p in preds])
        else:
            buckets = Counter([sketch.bucket(p[1]) for p in preds])
        sketch.zero += buckets.pop(None, 0)
        counts = sketch.counts
        for b, n in buckets.items():
            if b is not None:
                m = counts.get(b, 0) + n
                if m:
                    counts[b] = m
                else:
                    del counts[b]
        sketch.count += len(preds)
        sketch.total_units += sum([round(p[1] * TOTAL_SCALE) for p in preds])
        errors = [p[3] for p in preds if p[3] is not None]
        if errors:
            self.n_errors += len(errors)
            _add_counts(self.errors, Counter(errors))
        served = Counter([p[0] for p in preds if p[3] is None and p[0] is not None])
        if served:
            _add_counts(self.predicted, dict(served))

    @classmethod
    def of_pairs(cls, pairs: Collection[Pair]) -> Aggregate:
        """The aggregate of ``pairs`` built in one go: equal (``to_dict``) to adding them
        one by one with :meth:`add_pair`, at less than half the cost per pair (counts
        through ``Counter``, exact sums through ``math.fsum``)."""
        agg = cls()
        delay = agg.label_delay_s
        buckets: Counter[int | None] = Counter([p[11] for p in pairs])
        delay.zero = buckets.pop(None, 0)
        delay.counts = {b: n for b, n in buckets.items() if b is not None}
        delay.count = len(pairs)
        delay.total_units = sum([round(p[10] * TOTAL_SCALE) for p in pairs])
        cls_pairs = [p for p in pairs if p[0] == "c"]
        reg = [p for p in pairs if p[0] != "c"] if len(cls_pairs) < len(pairs) else []
        agg.n_labelled = len(cls_pairs)
        confusion = agg.confusion
        for (lab, pred), n in Counter([(p[1], p[2]) for p in cls_pairs]).items():
            row = confusion.get(lab)
            if row is None:
                row = confusion[lab] = {}
            row[pred] = n
        probs = [p for p in cls_pairs if p[3] is not None and p[4] is not None]
        if probs:
            agg.n_prob = len(probs)
            agg.n_prob_binary = sum([p[5] == 2 for p in probs])
            agg.log_loss_sum = ExactSum.of([p[3] for p in probs if p[3] is not None])
            agg.brier_sum = ExactSum.of([p[4] for p in probs if p[4] is not None])
            auc = agg.auc
            binned = Counter([(c, c != p[1], b) for p in probs for c, b in p[6]])
            for (c, negative, b), n in binned.items():
                hists = auc.get(c)
                if hists is None:
                    hists = auc[c] = [{}, {}]
                hists[negative][b] = n
        if reg:
            agg.n_regression = len(reg)
            agg.abs_err_sum = ExactSum.of([p[7] for p in reg])
            agg.sq_err_sum = ExactSum.of([p[8] for p in reg])
            agg.ape_sum = ExactSum.of([p[9] for p in reg])
        return agg

    def merge(self, other: Aggregate, sign: int = 1) -> None:
        """Add ``other`` into this aggregate (exact for counts and histograms);
        ``sign=-1`` subtracts an aggregate of pairs that were added before."""
        if self.deferred_pairs or self.deferred_predictions:
            self.settle()
        if other.deferred_pairs or other.deferred_predictions:
            other.settle()
        self.n_predictions += sign * other.n_predictions
        self.n_errors += sign * other.n_errors
        _add_counts(self.errors, other.errors, sign)
        _add_counts(self.predicted, other.predicted, sign)
        self.latency_ms.merge(other.latency_ms, sign)
        self.n_labelled += sign * other.n_labelled
        for label, row in other.confusion.items():
            mine = self.confusion.setdefault(label, {})
            _add_counts(mine, row, sign)
            if not mine:
                del self.confusion[label]
        self.n_prob += sign * other.n_prob
        self.n_prob_binary += sign * other.n_prob_binary
        self.log_loss_sum.merge(other.log_loss_sum, sign)
        self.brier_sum.merge(other.brier_sum, sign)
        for c, (pos, neg) in other.auc.items():
            hists = self.auc.setdefault(c, [{}, {}])
            _add_counts(hists[0], pos, sign)
            _add_counts(hists[1], neg, sign)
            if not hists[0] and not hists[1]:
                del self.auc[c]
        self.n_regression += sign * other.n_regression
        self.abs_err_sum.merge(other.abs_err_sum, sign)
        self.sq_err_sum.merge(other.sq_err_sum, sign)
        self.ape_sum.merge(other.ape_sum, sign)
        self.n_expired += sign * other.n_expired
        self.label_delay_s.merge(other.label_delay_s, sign)

    def copy(self) -> Aggregate:
        return Aggregate.from_dict(self.to_dict())

    # -- results ---------------------------------------------------------------------
    @property
    def n_correct(self) -> int:
        if self.deferred_pairs:
            self.settle()
        return sum(row.get(label, 0) for label, row in self.confusion.items())

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_labelled if self.n_labelled > 0 else math.nan

    def metrics(self) -> dict[str, float]:
        if self.deferred_pairs or self.deferred_predictions:
            self.settle()
        return compute_metrics(self)

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self.deferred_pairs or self.deferred_predictions:
            self.settle()
        return {
            "n_predictions": self.n_predictions,
            "n_errors": self.n_errors,
            "errors": dict(self.errors),
            "predicted": dict(self.predicted),
            "latency_ms": self.latency_ms.to_dict(),
            "n_labelled": self.n_labelled,
            "confusion": {k: dict(v) for k, v in self.confusion.items()},
            "n_prob": self.n_prob,
            "n_prob_binary": self.n_prob_binary,
            "log_loss_sum": self.log_loss_sum.to_json(),
            "brier_sum": self.brier_sum.to_json(),
            "auc": {
                c: [{str(b): n for b, n in h.items()} for h in hs] for c, hs in self.auc.items()
            },
            "n_regression": self.n_regression,
            "abs_err_sum": self.abs_err_sum.to_json(),
            "sq_err_sum": self.sq_err_sum.to_json(),
            "ape_sum": self.ape_sum.to_json(),
            "n_expired": self.n_expired,
            "label_delay_s": self.label_delay_s.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Aggregate:
        return cls(
            n_predictions=int(d["n_predictions"]),
            n_errors=int(d["n_errors"]),
            errors={str(k): int(v) for k, v in d["errors"].items()},
            predicted={str(k): int(v) for k, v in d["predicted"].items()},
            latency_ms=LogSketch.from_dict(d["latency_ms"]),
            n_labelled=int(d["n_labelled"]),
            confusion={
                str(k): {str(p): int(n) for p, n in row.items()}
                for k, row in d["confusion"].items()
            },
            n_prob=int(d["n_prob"]),
            n_prob_binary=int(d["n_prob_binary"]),
            log_loss_sum=ExactSum.from_json(d["log_loss_sum"]),
            brier_sum=ExactSum.from_json(d["brier_sum"]),
            auc={
                str(c): [{int(b): int(n) for b, n in h.items()} for h in hs]
                for c, hs in d["auc"].items()
            },
            n_regression=int(d["n_regression"]),
            abs_err_sum=ExactSum.from_json(d["abs_err_sum"]),
            sq_err_sum=ExactSum.from_json(d["sq_err_sum"]),
            ape_sum=ExactSum.from_json(d["ape_sum"]),
            n_expired=int(d["n_expired"]),
            label_delay_s=LogSketch.from_dict(d["label_delay_s"]),
        )


def merge_all(aggregates: list[Aggregate]) -> Aggregate:
    """The merge of any number of aggregates (a fresh value; inputs are unchanged)."""
    out = Aggregate()
    for a in aggregates:
        out.merge(a)
    return out
