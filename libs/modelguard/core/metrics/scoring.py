"""Metrics of an aggregate (scikit-learn's definitions; see :mod:`.aggregate`).

Pure functions of an :class:`~modelguard.core.metrics.aggregate.Aggregate`:
:func:`compute_metrics` (every metric a window supports), :func:`roc_auc` from fixed
score bins and its :func:`auc_tie_bound`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from modelguard.core.metrics.formulas import error_rate
from modelguard.core.metrics.pairs import AUC_BINS, CLASS_SHARE_PREFIX, metric_class_key

if TYPE_CHECKING:
    from modelguard.core.metrics.aggregate import Aggregate

POSITIVE_CLASSES = ("1", "true", "True")


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
    rate = error_rate(agg.n_errors, agg.n_predictions)
    if rate is not None:
        out["error_rate"] = rate
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
