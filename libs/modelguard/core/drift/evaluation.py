"""Window tests: the verdict on one window of events against the reference.

:func:`evaluate_window` turns a window's counts (a
:class:`~modelguard.core.drift.accumulators.WindowAccumulator`) into :class:`TestResult`
rows:

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
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from modelguard.contracts.common import Severity
from modelguard.core.drift import severity as sev
from modelguard.core.drift import stats
from modelguard.core.drift.accumulators import (
    Accumulator,
    CategoricalAccumulator,
    NumericAccumulator,
    WindowAccumulator,
)
from modelguard.core.drift.reference import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
)


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
    # features: drift tests under "data", their quality under "quality"; model outputs:
    # both under "prediction"
    columns = (
        ("data", "quality", reference.features, window.features),
        ("prediction", "prediction", reference.outputs, window.outputs),
    )
    for family, quality, profiles, accs in columns:
        for name, prof in profiles.items():
            acc = accs.get(name)
            if acc is None:
                continue
            families[family] += _column_tests(family, name, prof, acc, cfg)
            families[quality] += _quality_tests(name, prof, acc, family)
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
