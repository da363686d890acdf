"""What one labelled prediction contributes to a window (:class:`Pair`), and class keys.

A :class:`Pair` is computed once per joined label and added to (or, ``sign=-1``,
removed from) an :class:`~modelguard.core.metrics.aggregate.Aggregate`; the class-key
rules here bound the per-class series of the metrics processor and the edge validator.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, NamedTuple

from modelguard.contracts.limits import LIMITS
from modelguard.core.metrics.sketch import default_bucket

AUC_BINS = 200
LOG_LOSS_EPS = 1e-15
MAPE_EPS = float.fromhex("0x1.0p-52")  # numpy.finfo(float64).eps, as scikit-learn
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


_new_pair = tuple.__new__


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
        return _new_pair(  # cls(...) without its Python-level __new__ (once per label)
            cls,
            (
                "c",
                lab,
                pred,
                ll,
                br,
                n_classes,
                bins,
                0.0,
                0.0,
                0.0,
                delay_s,
                default_bucket(delay_s),
            ),
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
