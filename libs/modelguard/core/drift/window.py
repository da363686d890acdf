"""Window tests: mergeable histograms of a window of events, and their verdicts.

A :class:`WindowAccumulator` counts, per column, the current window on the reference's
bins (plus missing values, type errors, out-of-range values, unseen categories). It is
a plain value that merges by addition, so partitions or workers can be combined
exactly. :func:`evaluate_window` turns it into :class:`TestResult` rows:

* numeric columns: KS on the fine reference bins (asymptotic p-value), PSI and
  Jensen-Shannon on reference deciles, Wasserstein (in reference sigma) on bin means;
* categorical columns: chi-square over reference categories, PSI and Jensen-Shannon;
  unseen categories as a quality test;
* quality: missing-rate increase, out-of-range values, type errors;
* outputs (kind ``prediction``): the predicted class or regression output and the
  confidence, tested like features, plus confidence collapse;
* dataset: the share of drifted features, drift above ``dataset_share``.

A feature drifts only when its Benjamini-Hochberg adjusted p-value (over the window's
tests of the same kind, i.e. across the model's features) is below ``alpha`` *and* the
effect reaches severity LOW (see :mod:`severity`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelguard.contracts.common import Severity
from modelguard.core.drift import severity as sev
from modelguard.core.drift import stats
from modelguard.core.drift.reference import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    category_of,
    is_number,
    safe_float,
)

IntArray = npt.NDArray[np.intp]
MAX_UNSEEN_TRACKED = 50
_FAST_NUMERIC = frozenset({float, int, type(None)})


@dataclass
class NumericAccumulator:
    counts: npt.NDArray[np.int64]
    sums: npt.NDArray[np.float64]
    missing: int = 0
    type_errors: int = 0
    below: int = 0
    above: int = 0

    @classmethod
    def empty(cls, profile: NumericProfile) -> NumericAccumulator:
        return cls(np.zeros(profile.n_bins, np.int64), np.zeros(profile.n_bins))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, profile: NumericProfile, values: Sequence[object]) -> npt.NDArray[np.float64]:
        """Count ``values`` (raw feature values); returns the numeric ones."""
        kinds = set(map(type, values))
        if kinds <= _FAST_NUMERIC:  # the common case: numbers and missing values only
            n_none = values.count(None) if type(None) in kinds else 0
            raw = [v for v in values if v is not None] if n_none else values
            try:
                x = np.asarray(raw, dtype=np.float64)
            except OverflowError:  # an int beyond the float range: the careful path
                x = None
            if x is not None:
                self.missing += n_none
                finite = np.isfinite(x)
                if not finite.all():
                    self.missing += int(x.size - finite.sum())
                    x = x[finite]
                self._count(profile, x)
                return x
        present: list[float] = []
        for v in values:
            if is_number(v):
                f = safe_float(v)
                if f is not None:
                    present.append(f)
                elif isinstance(v, float):  # nan / inf: missing, as in the reference
                    self.missing += 1
                else:  # an int no float can hold: not a usable number
                    self.type_errors += 1
            elif v is None:
                self.missing += 1
            else:
                self.type_errors += 1
        x = np.asarray(present, dtype=np.float64)
        self._count(profile, x)
        return x

    def _count(self, profile: NumericProfile, x: npt.NDArray[np.float64]) -> None:
        if x.size:
            bins = profile.bin_of(x)
            self.counts += np.bincount(bins, minlength=profile.n_bins)
            with np.errstate(over="ignore", invalid="ignore"):
                self.sums += np.bincount(bins, weights=x, minlength=profile.n_bins)
            if not np.isfinite(self.sums).all():  # values near the float limit: saturate
                big = np.finfo(np.float64).max
                np.nan_to_num(self.sums, copy=False, nan=0.0, posinf=big, neginf=-big)
            self.below += int(np.count_nonzero(x < profile.minimum))
            self.above += int(np.count_nonzero(x > profile.maximum))

    def merge(self, other: NumericAccumulator) -> NumericAccumulator:
        return NumericAccumulator(
            self.counts + other.counts,
            self.sums + other.sums,
            self.missing + other.missing,
            self.type_errors + other.type_errors,
            self.below + other.below,
            self.above + other.above,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], profile: NumericProfile) -> NumericAccumulator:
        counts = np.asarray(d["counts"], dtype=np.int64)
        sums = np.asarray(d["sums"], dtype=np.float64)
        if counts.shape != (profile.n_bins,) or sums.shape != counts.shape:
            raise ValueError("numeric accumulator does not fit the reference's bins")
        return cls(
            counts,
            sums,
            int(d["missing"]),
            int(d["type_errors"]),
            int(d["below"]),
            int(d["above"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "missing": self.missing,
            "type_errors": self.type_errors,
            "below": self.below,
            "above": self.above,
        }


@dataclass
class CategoricalAccumulator:
    counts: npt.NDArray[np.int64]
    unseen: Counter[str] = field(default_factory=Counter)
    unseen_total: int = 0
    missing: int = 0
    type_errors: int = 0

    @classmethod
    def empty(cls, profile: CategoricalProfile) -> CategoricalAccumulator:
        return cls(np.zeros(len(profile.counts), np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + self.unseen_total

    def add(self, profile: CategoricalProfile, values: Sequence[object]) -> list[str]:
        """Count ``values``; floats are type errors (categories are strings or ints).
        Returns the category labels of the valid values."""
        index = profile.index
        other = len(profile.categories)
        labels: list[str] = []
        for v in values:
            if v is None:
                self.missing += 1
                continue
            if isinstance(v, float):
                self.type_errors += 1
                continue
            label = category_of(v)
            labels.append(label)
            i = index.get(label)
            if i is not None:
                self.counts[i] += 1
            elif profile.has_other:
                self.counts[other] += 1
            else:
                self.unseen_total += 1
                if label in self.unseen or len(self.unseen) < MAX_UNSEEN_TRACKED:
                    self.unseen[label] += 1
        return labels

    def merge(self, other: CategoricalAccumulator) -> CategoricalAccumulator:
        unseen = self.unseen + other.unseen
        return CategoricalAccumulator(
            self.counts + other.counts,
            Counter(dict(unseen.most_common(MAX_UNSEEN_TRACKED))),
            self.unseen_total + other.unseen_total,
            self.missing + other.missing,
            self.type_errors + other.type_errors,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], profile: CategoricalProfile) -> CategoricalAccumulator:
        counts = np.asarray(d["counts"], dtype=np.int64)
        if counts.shape != (len(profile.counts),):
            raise ValueError("categorical accumulator does not fit the reference's categories")
        return cls(
            counts,
            Counter({str(k): int(v) for k, v in d["unseen"].items()}),
            int(d["unseen_total"]),
            int(d["missing"]),
            int(d["type_errors"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "counts": self.counts.tolist(),
            "unseen": dict(self.unseen),
            "unseen_total": self.unseen_total,
            "missing": self.missing,
            "type_errors": self.type_errors,
        }


Accumulator = NumericAccumulator | CategoricalAccumulator


def add_values(acc: Accumulator, profile: ColumnProfile, values: Sequence[object]) -> None:
    """Count raw ``values`` into ``acc`` (which must match ``profile``'s kind)."""
    if isinstance(profile, NumericProfile):
        if isinstance(acc, NumericAccumulator):
            acc.add(profile, values)
        return
    if isinstance(acc, CategoricalAccumulator):
        acc.add(profile, values)


def accumulator_from_dict(d: Mapping[str, Any], profile: ColumnProfile) -> Accumulator:
    if isinstance(profile, NumericProfile) and d.get("kind") == "numeric":
        return NumericAccumulator.from_dict(d, profile)
    if isinstance(profile, CategoricalProfile) and d.get("kind") == "categorical":
        return CategoricalAccumulator.from_dict(d, profile)
    raise ValueError(f"accumulator kind {d.get('kind')!r} does not match the reference")


def empty_accumulator(profile: ColumnProfile) -> Accumulator:
    if isinstance(profile, NumericProfile):
        return NumericAccumulator.empty(profile)
    return CategoricalAccumulator.empty(profile)


@dataclass
class WindowAccumulator:
    """Everything counted over one window of one model version (mergeable)."""

    features: dict[str, Accumulator]
    outputs: dict[str, Accumulator]
    n_events: int = 0

    @classmethod
    def empty(cls, reference: ReferenceProfile) -> WindowAccumulator:
        return cls(
            {k: empty_accumulator(p) for k, p in reference.features.items()},
            {k: empty_accumulator(p) for k, p in reference.outputs.items()},
        )

    def merge(self, other: WindowAccumulator) -> WindowAccumulator:
        def m(a: dict[str, Accumulator], b: dict[str, Accumulator]) -> dict[str, Accumulator]:
            out = dict(a)
            for k, v in b.items():
                out[k] = out[k].merge(v) if k in out else v  # type: ignore[arg-type]
            return out

        return WindowAccumulator(
            m(self.features, other.features),
            m(self.outputs, other.outputs),
            self.n_events + other.n_events,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], reference: ReferenceProfile) -> WindowAccumulator:
        """The inverse of :meth:`to_dict` against the same reference."""
        if set(d["features"]) != set(reference.features) or set(d["outputs"]) != set(
            reference.outputs
        ):
            raise ValueError("window accumulator columns do not match the reference")
        return cls(
            {k: accumulator_from_dict(v, reference.features[k]) for k, v in d["features"].items()},
            {k: accumulator_from_dict(v, reference.outputs[k]) for k, v in d["outputs"].items()},
            int(d["n_events"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
        }


@dataclass(frozen=True)
class TestResult:
    """One test on one column (or the dataset) over one window."""

    __test__ = False  # not a pytest class

    kind: str
    feature: str | None
    test: str
    statistic: float
    p_value: float | None
    effect_size: float | None
    threshold: float | None
    drift_detected: bool
    severity: Severity
    n_reference: int
    n_current: int
    p_adjusted: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""

    @property
    def action(self) -> str:
        if self.kind == "quality" and self.drift_detected:
            return "check the upstream data pipeline of this feature"
        return sev.ACTIONS[self.severity]


@dataclass(frozen=True)
class EvaluationConfig:
    """``alpha``: FDR level across a model's features (and significance of each quality
    test); ``min_samples``: fewer current values and a column is not tested."""

    alpha: float = 0.05
    dataset_share: float = 0.2
    min_samples: int = 50
    psi_groups: int = 10


@dataclass(frozen=True)
class _Raw:
    kind: str
    feature: str
    test: str
    statistic: float
    p_value: float
    effect: float
    severity: Severity
    n_ref: int
    n_cur: int
    threshold: float | None
    metrics: dict[str, float]
    detail: str = ""


def _numeric_tests(
    kind: str, name: str, p: NumericProfile, a: NumericAccumulator, cfg: EvaluationConfig
) -> list[_Raw]:
    n = a.n
    if n < cfg.min_samples:
        return []
    ref = np.asarray(p.counts, dtype=np.float64)
    cur = a.counts.astype(np.float64)
    d = stats.ks_binned(ref, cur)
    pv = stats.ks_pvalue(d, p.n, n)
    groups = p.coarse_groups(cfg.psi_groups)
    ref_g, cur_g = np.bincount(groups, weights=ref), np.bincount(groups, weights=cur)
    psi = stats.psi(ref_g, cur_g)
    jsd = stats.jensen_shannon(ref_g, cur_g)
    occupied = a.counts > 0
    cur_means = np.divide(a.sums, a.counts, out=np.zeros_like(a.sums), where=occupied)
    w = stats.wasserstein(p.bin_means, cur_means[occupied], ref, cur[occupied])
    w_norm = w / p.std if p.std > 0 else w
    severity = max(sev.from_effect("psi", psi), sev.from_effect("wasserstein", w_norm))
    metrics = {
        "ks": d,
        "psi": psi,
        "jensen_shannon": jsd,
        "wasserstein": w,
        "wasserstein_sigma": w_norm,
    }
    if kind == "prediction" and name == "confidence":
        drop = p.mean - float(a.sums.sum() / n)
        metrics["confidence_mean"] = float(a.sums.sum() / n)
    out = [_Raw(kind, name, "ks", d, pv, psi, severity, p.n, n, None, metrics)]
    if kind == "prediction" and name == "confidence":
        se = max(p.std, 1e-9) / math.sqrt(n)
        pc = 0.5 * math.erfc((drop / se) / math.sqrt(2)) if drop > 0 else 1.0
        out.append(
            _Raw(
                kind,
                name,
                "confidence_collapse",
                drop,
                pc,
                drop,
                sev.from_effect("confidence_drop", drop),
                p.n,
                n,
                None,
                {"confidence_drop": drop},
            )
        )
    return out


def _categorical_tests(
    kind: str, name: str, p: CategoricalProfile, a: CategoricalAccumulator, cfg: EvaluationConfig
) -> list[_Raw]:
    """Chi-square test of homogeneity of the window against the reference sample (both
    are samples: a 2 x K contingency table), PSI and Jensen-Shannon; categories unseen
    in the reference form one more column, so a new category is drift too (and counts
    towards the drifted-feature share), not only a quality signal."""
    n_cur = a.n
    if n_cur < cfg.min_samples:
        return []
    ref = np.append(np.asarray(p.counts, dtype=np.float64), 0.0)
    obs = np.append(a.counts.astype(np.float64), float(a.unseen_total))
    keep = (ref + obs) > 0
    chi2, pv = stats.chi_square_contingency(ref, obs)
    psi = stats.psi(ref[keep], obs[keep])
    jsd = stats.jensen_shannon(ref[keep], obs[keep])
    metrics = {"chi_square": chi2, "psi": psi, "jensen_shannon": jsd}
    if a.unseen_total:
        metrics["unseen_share"] = a.unseen_total / n_cur
    return [
        _Raw(
            kind,
            name,
            "chi_square",
            chi2,
            pv,
            psi,
            sev.from_effect("psi", psi),
            p.n,
            n_cur,
            None,
            metrics,
        )
    ]


def _rate_test(
    kind: str,
    name: str,
    test: str,
    count: int,
    total: int,
    p0: float,
    n_ref: int,
    detail: str = "",
) -> _Raw | None:
    if total <= 0 or count <= 0:
        return None
    rate = count / total
    effect = rate - p0
    pv = stats.binomial_excess_pvalue(count, total, p0)
    scale = "type_error_rate" if test == "type_errors" else "rate"
    return _Raw(
        kind,
        name,
        test,
        rate,
        pv,
        effect,
        sev.from_effect(scale, effect),
        n_ref,
        total,
        p0,
        {f"{test}_rate": rate},
        detail,
    )


def _quality_tests(name: str, p: ColumnProfile, a: Accumulator, out_kind: str) -> list[_Raw]:
    kind = "quality" if out_kind == "data" else out_kind
    total = a.n + a.missing + a.type_errors
    floor = 1.0 / (p.n + p.missing + 1)
    rows = [
        _rate_test(
            kind,
            name,
            "missing_rate",
            a.missing,
            total,
            max(p.missing / max(1, p.n + p.missing), floor),
            p.n,
        ),
        _rate_test(kind, name, "type_errors", a.type_errors, total, 0.0, p.n),
    ]
    if isinstance(p, NumericProfile) and isinstance(a, NumericAccumulator):
        rows.append(
            _rate_test(
                kind,
                name,
                "out_of_range",
                a.below + a.above,
                a.n,
                2.0 / (p.n + 1),
                p.n,
                f"{a.below} below {p.minimum:.6g}, {a.above} above {p.maximum:.6g}",
            )
        )
    if isinstance(a, CategoricalAccumulator) and isinstance(p, CategoricalProfile):
        top = ", ".join(f"{k!r}x{v}" for k, v in a.unseen.most_common(5))
        rows.append(
            _rate_test(kind, name, "unseen_categories", a.unseen_total, a.n, floor, p.n, top)
        )
    return [r for r in rows if r is not None]


def _column_tests(
    kind: str, name: str, p: ColumnProfile, a: Accumulator, cfg: EvaluationConfig
) -> list[_Raw]:
    if isinstance(p, NumericProfile) and isinstance(a, NumericAccumulator):
        return _numeric_tests(kind, name, p, a, cfg)
    if isinstance(p, CategoricalProfile) and isinstance(a, CategoricalAccumulator):
        return _categorical_tests(kind, name, p, a, cfg)
    return []


@dataclass(frozen=True)
class WindowVerdict:
    results: tuple[TestResult, ...]
    drifted_share: float
    dataset_drift: bool
    n_events: int

    def by_kind(self, kind: str) -> list[TestResult]:
        return [r for r in self.results if r.kind == kind]

    def feature_results(self) -> dict[str, TestResult]:
        """The headline data-drift result per feature."""
        return {r.feature: r for r in self.results if r.kind == "data" and r.feature}


def evaluate_window(
    reference: ReferenceProfile, window: WindowAccumulator, cfg: EvaluationConfig | None = None
) -> WindowVerdict:
    cfg = cfg or EvaluationConfig()
    families: dict[str, list[_Raw]] = {"data": [], "prediction": [], "quality": []}
    for name, prof in reference.features.items():
        acc = window.features.get(name)
        if acc is None:
            continue
        families["data"] += _column_tests("data", name, prof, acc, cfg)
        families["quality"] += _quality_tests(name, prof, acc, "data")
    for name, prof in reference.outputs.items():
        acc = window.outputs.get(name)
        if acc is None:
            continue
        families["prediction"] += _column_tests("prediction", name, prof, acc, cfg)
        families["prediction"] += _quality_tests(name, prof, acc, "prediction")
    results: list[TestResult] = []
    for rows in families.values():
        adjusted = stats.benjamini_hochberg([r.p_value for r in rows])
        for r, q in zip(rows, adjusted, strict=True):
            detected = q <= cfg.alpha and r.severity >= Severity.LOW
            results.append(
                TestResult(
                    kind=r.kind,
                    feature=r.feature,
                    test=r.test,
                    statistic=r.statistic,
                    p_value=r.p_value,
                    p_adjusted=q,
                    effect_size=r.effect,
                    threshold=r.threshold,
                    drift_detected=detected,
                    severity=r.severity if detected else Severity.NONE,
                    n_reference=r.n_ref,
                    n_current=r.n_cur,
                    metrics=r.metrics,
                    detail=r.detail,
                )
            )
    data = [r for r in results if r.kind == "data"]
    drifted = sum(r.drift_detected for r in data)
    share = drifted / len(data) if data else 0.0
    dataset = share > cfg.dataset_share
    results.append(
        TestResult(
            kind="dataset",
            feature=None,
            test="drifted_share",
            statistic=share,
            p_value=None,
            effect_size=share,
            threshold=cfg.dataset_share,
            drift_detected=dataset,
            severity=sev.from_share(share, cfg.dataset_share),
            n_reference=reference.n_rows,
            n_current=window.n_events,
            metrics={"drifted_features": float(drifted), "tested_features": float(len(data))},
        )
    )
    return WindowVerdict(tuple(results), share, dataset, window.n_events)
