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

import hashlib
import math
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from modelguard.contracts.limits import LIMITS
from modelguard.core.metrics.sketch import (
    DEFAULT_ALPHA,
    TOTAL_SCALE,
    ExactSum,
    LogSketch,
    default_bucket,
)

AUC_BINS = 200
LOG_LOSS_EPS = 1e-15
MAPE_EPS = float.fromhex("0x1.0p-52")  # numpy.finfo(float64).eps, as scikit-learn
POSITIVE_CLASSES = ("1", "true", "True")
#: Predicted classes tracked per model version; the rest are counted as ``OTHER_CLASS``.
MAX_TRACKED_CLASSES = 100
OTHER_CLASS = "__other__"
#: The ``predicted_class`` of a regression prediction in per-class counters.
REGRESSION_CLASS = ""
#: Prefix of the per-class share metrics (``class_share.<class>``).
CLASS_SHARE_PREFIX = "class_share."
#: Longest class string used verbatim in a metric key (the key is a contract ``Name``).
MAX_METRIC_CLASS_LENGTH = LIMITS.max_name_length - len(CLASS_SHARE_PREFIX)
_UNSAFE_IN_KEY = re.compile(r"[\s\x00-\x1f\x7f]")
#: Classes for which per-class ROC-AUC histograms are kept.
MAX_AUC_CLASSES = 32
_K = TypeVar("_K", str, int)


def class_key(value: object) -> str:
    """The string form of a class label (``1``, ``1.0`` and ``"1"`` are the same class).

    >>> class_key(1), class_key(1.0), class_key("cat"), class_key(2.5)
    ('1', '1', 'cat', '2.5')
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def tracked_class(counts: dict[str, int], key: str, cap: int = MAX_TRACKED_CLASSES) -> str:
    """``key``, or ``OTHER_CLASS`` once ``counts`` already tracks ``cap`` other classes:
    the one rule bounding per-class series (metrics processor and edge validator).

    >>> tracked_class({"a": 1, "b": 2}, "c", cap=2), tracked_class({"a": 1}, "b", cap=2)
    ('__other__', 'b')
    """
    if key in counts or len(counts) < cap:
        return key
    return OTHER_CLASS


def metric_class_key(cls: str) -> str:
    """The class as it appears in a metric key: verbatim when it is short and has no
    whitespace or control characters (always, for contract-valid events), else a
    readable, collision-resistant form (unsafe characters as ``_``, then ``~`` and a
    hash), so a window never fails to build whatever class string it holds.

    >>> metric_class_key("fraud"), metric_class_key("not fraud")
    ('fraud', 'not_fraud~462ad3ff0a60')
    """
    if len(cls) <= MAX_METRIC_CLASS_LENGTH and _UNSAFE_IN_KEY.search(cls) is None:
        return cls
    digest = hashlib.sha1(cls.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return _UNSAFE_IN_KEY.sub("_", cls[:80]) + "~" + digest.hexdigest()[:12]


def score_bin(p: float) -> int:
    return min(int(p * AUC_BINS), AUC_BINS - 1)


class Pair(NamedTuple):
    """What one labelled prediction adds to an aggregate (JSON-able as a list)."""

    task: str  # "c" classification, "r" regression
    label: str  # class key (classification) or "" (regression)
    predicted: str
    log_loss: float | None  # per-pair log loss, when probabilities were present
    brier: float | None  # per-pair sum_c (p_c - y_c)^2
    n_prob_classes: int
    score_bins: tuple[tuple[str, int], ...]  # (class, bin of p_class) for AUC
    abs_err: float
    sq_err: float
    ape: float
    delay_s: float
    delay_bucket: int | None  # LogSketch bucket of delay_s (computed once, used 4 times)

    @classmethod
    def classification(
        cls,
        label: object,
        predicted: object,
        probabilities: dict[str, float] | None,
        delay_s: float,
    ) -> Pair:
        lab, pred = class_key(label), class_key(predicted)
        ll = br = None
        bins: tuple[tuple[str, int], ...] = ()
        n_classes = 0
        if probabilities:
            n_classes = len(probabilities)
            p_true = probabilities.get(lab, 0.0)
            ll = -math.log(min(max(p_true, LOG_LOSS_EPS), 1.0))
            # one pass: sum_c (p_c - y_c)^2 (same order of additions as before) and bins
            br = 0.0
            keep_bins = n_classes <= MAX_AUC_CLASSES
            binned = []
            for c, p in probabilities.items():
                d = p - 1.0 if c == lab else p
                br += d * d
                if keep_bins:
                    binned.append((c, min(int(p * AUC_BINS), AUC_BINS - 1)))
            if lab not in probabilities:
                br += 1.0
            bins = tuple(binned)
        return cls(
            "c", lab, pred, ll, br, n_classes, bins, 0.0, 0.0, 0.0, delay_s, default_bucket(delay_s)
        )

    @classmethod
    def regression(cls, label: float, predicted: float, delay_s: float) -> Pair:
        err = abs(label - predicted)
        ape = err / max(abs(label), MAPE_EPS)
        return cls(
            "r", "", "", None, None, 0, (), err, err * err, ape, delay_s, default_bucket(delay_s)
        )

    def to_json(self) -> list[Any]:
        """The pair as a JSON array (``json.dumps`` writes the tuple itself the same way)."""
        return [*self[:6], [list(b) for b in self.score_bins], *self[7:]]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Pair:
        bins = tuple((str(c), int(b)) for c, b in raw[6])
        delay = float(raw[10])
        return cls(
            str(raw[0]),
            str(raw[1]),
            str(raw[2]),
            raw[3],
            raw[4],
            int(raw[5]),
            bins,
            float(raw[7]),
            float(raw[8]),
            float(raw[9]),
            delay,
            default_bucket(delay),  # derived, so older checkpoints without it still load
        )


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
        return sum(row.get(label, 0) for label, row in self.confusion.items())

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_labelled if self.n_labelled > 0 else math.nan

    def metrics(self) -> dict[str, float]:
        return compute_metrics(self)

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
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


# -- metrics ---------------------------------------------------------------------------
def positive_class(classes: set[str]) -> str | None:
    """The positive class when ``classes`` form a binary problem, else None."""
    if len(classes) > 2:
        return None
    for p in POSITIVE_CLASSES:
        if p in classes:
            return p
    return None


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1


def _binned_auc(pos: dict[int, int], neg: dict[int, int]) -> float:
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = 0
    acc = 0.0
    for b in range(AUC_BINS):
        p, n = pos.get(b, 0), neg.get(b, 0)
        acc += p * (below + 0.5 * n)
        below += n
    return acc / (n_pos * n_neg)


def auc_tie_bound(agg: Aggregate, cls: str) -> float:
    """Upper bound of the binned AUC's error for class ``cls`` (half the tied share)."""
    pos, neg = agg.auc.get(cls, [{}, {}])
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return 0.5 * sum(p * neg.get(b, 0) for b, p in pos.items()) / (n_pos * n_neg)


def roc_auc(agg: Aggregate) -> float:
    """Binary ROC-AUC, or one-vs-rest macro over the label classes; NaN when undefined."""
    labels = set(agg.confusion)
    if not agg.auc or not labels:
        return math.nan
    pos_cls = positive_class(labels | set(agg.auc))
    if pos_cls is not None and pos_cls in agg.auc:
        return _binned_auc(*agg.auc[pos_cls])
    values = [_binned_auc(*agg.auc[c]) for c in sorted(labels) if c in agg.auc]
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def compute_metrics(agg: Aggregate, max_class_shares: int = 20) -> dict[str, float]:
    """Every metric the aggregate supports (keys documented in ``metric_window.py``)."""
    out: dict[str, float] = {
        "n_predictions": float(agg.n_predictions),
        "n_errors": float(agg.n_errors),
    }
    if agg.n_predictions:
        out["error_rate"] = agg.n_errors / agg.n_predictions
        for etype, n in sorted(agg.errors.items()):
            out[f"error_rate.{etype}"] = n / agg.n_predictions
    served = sum(agg.predicted.values())
    if served:
        top = sorted(agg.predicted.items(), key=lambda kv: (-kv[1], kv[0]))[:max_class_shares]
        for c, n in top:
            out[CLASS_SHARE_PREFIX + metric_class_key(c)] = n / served
    if agg.latency_ms.count > 0:
        out["latency_p50_ms"] = agg.latency_ms.quantile(0.5)
        out["latency_p95_ms"] = agg.latency_ms.quantile(0.95)
        out["latency_p99_ms"] = agg.latency_ms.quantile(0.99)
        out["latency_mean_ms"] = agg.latency_ms.mean
    n_resolved = agg.n_labelled + agg.n_regression + agg.n_expired
    if n_resolved:
        out["label_coverage"] = (agg.n_labelled + agg.n_regression) / n_resolved
    if agg.label_delay_s.count > 0:
        out["label_delay_p50_s"] = agg.label_delay_s.quantile(0.5)
        out["label_delay_p95_s"] = agg.label_delay_s.quantile(0.95)
    if agg.n_labelled:
        out["n_labelled"] = float(agg.n_labelled)
        out["accuracy"] = agg.accuracy
        classes = set(agg.confusion)
        for row in agg.confusion.values():
            classes.update(row)
        per_class = []
        for c in sorted(classes):
            tp = agg.confusion.get(c, {}).get(c, 0)
            fp = sum(row.get(c, 0) for label, row in agg.confusion.items() if label != c)
            fn = sum(n for p, n in agg.confusion.get(c, {}).items() if p != c)
            per_class.append((c, _prf(tp, fp, fn)))
        macro = [sum(v[i] for _, v in per_class) / len(per_class) for i in range(3)]
        out["f1_macro"] = macro[2]
        pos = positive_class(classes)
        if pos is not None:
            precision, recall, f1 = dict(per_class)[pos]
        else:
            precision, recall, f1 = macro
        out["precision"], out["recall"], out["f1"] = precision, recall, f1
        if agg.n_prob:
            out["log_loss"] = agg.log_loss_sum.value / agg.n_prob
            scale = 0.5 if agg.n_prob_binary == agg.n_prob else 1.0
            out["brier"] = scale * agg.brier_sum.value / agg.n_prob
            auc = roc_auc(agg)
            if not math.isnan(auc):
                out["auc"] = auc
    if agg.n_regression:
        out["n_labelled"] = out.get("n_labelled", 0.0) + agg.n_regression
        out["mae"] = agg.abs_err_sum.value / agg.n_regression
        out["rmse"] = math.sqrt(max(agg.sq_err_sum.value, 0.0) / agg.n_regression)
        out["mape"] = agg.ape_sum.value / agg.n_regression
    return out
