"""Frequentist and Bayesian statistics of A/B experiments, from sufficient statistics.

Everything here works on counts and sums (``Moments``), so an experiment with millions
of units is analysed in microseconds. Each function is checked against an independent
oracle (SciPy, statsmodels, closed forms or simulation) in ``tests/unit/test_stats*.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of unit-level values (mergeable by addition)."""

    n: float
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Moments:
        arr = np.asarray(values, dtype=float)
        return cls(float(arr.size), float(arr.sum()), float(np.square(arr).sum()))

    @classmethod
    def binary(cls, successes: float, n: float) -> Moments:
        return cls(n, successes, successes)

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n > 0 else math.nan

    @property
    def var(self) -> float:
        """Sample variance (ddof=1); NaN below two observations."""
        if self.n < 2:
            return math.nan
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))

    @property
    def var_of_mean(self) -> float:
        return self.var / self.n if self.n >= 2 else math.nan


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control: difference with CI, relative lift with CI, p-value."""

    difference: float
    se: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float


def _relative_lift(
    mean_a: float, var_mean_a: float, mean_b: float, var_mean_b: float, z: float
) -> tuple[float, float, float]:
    """Relative lift ``mean_b / mean_a - 1`` with a delta-method CI of half-width z*se."""
    if mean_a == 0 or not math.isfinite(mean_a):
        return math.nan, math.nan, math.nan
    lift = mean_b / mean_a - 1.0
    var = var_mean_b / mean_a**2 + mean_b**2 * var_mean_a / mean_a**4
    half = z * math.sqrt(max(var, 0.0))
    return lift, lift - half, lift + half


def two_proportion_ztest(
    successes_a: float, n_a: float, successes_b: float, n_b: float, alpha: float = 0.05
) -> Comparison:
    """Two-sided z-test of p_b - p_a = 0 (pooled SE for the test, unpooled Wald CI)."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError("both arms need at least one unit")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = p_b - p_a
    z_stat = diff / se0 if se0 > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z_stat)))
    va, vb = p_a * (1 - p_a) / n_a, p_b * (1 - p_b) / n_b
    se = math.sqrt(va + vb)
    z = float(stats.norm.ppf(1 - alpha / 2))
    rel, rel_lo, rel_hi = _relative_lift(p_a, va, p_b, vb, z)
    return Comparison(diff, se, z_stat, p_value, diff - z * se, diff + z * se, rel, rel_lo, rel_hi)


def welch_ttest(a: Moments, b: Moments, alpha: float = 0.05) -> Comparison:
    """Welch's unequal-variance t-test of mean_b - mean_a = 0 with a t-based CI."""
    if a.n < 2 or b.n < 2:
        raise ValueError("both arms need at least two units")
    va, vb = a.var_of_mean, b.var_of_mean
    se = math.sqrt(va + vb)
    diff = b.mean - a.mean
    if se == 0:
        p_value = 1.0 if diff == 0 else 0.0
        return Comparison(
            diff,
            0.0,
            math.copysign(math.inf, diff) if diff else 0.0,
            p_value,
            diff,
            diff,
            *_relative_lift(a.mean, va, b.mean, vb, 0.0),
        )
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t_stat = diff / se
    p_value = float(2 * stats.t.sf(abs(t_stat), df))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    rel, rel_lo, rel_hi = _relative_lift(
        a.mean, va, b.mean, vb, float(stats.norm.ppf(1 - alpha / 2))
    )
    return Comparison(diff, se, t_stat, p_value, diff - q * se, diff + q * se, rel, rel_lo, rel_hi)


# ---------------------------------------------------------------------------------------
# Always-valid inference: the normal-mixture sequential probability ratio test (mSPRT).
# ---------------------------------------------------------------------------------------


def mixture_rho2(tuning_n: float, alpha: float) -> float:
    """Mixing variance (per unit of variance) that makes the confidence sequence tightest
    at ``tuning_n`` observations (Waudby-Smith et al., time-uniform CLT)."""
    log_term = -2.0 * math.log(alpha)
    return (log_term + math.log(log_term + 1.0)) / tuning_n


def msprt_log_lr(estimate: float, var: float, tau2: float, null: float = 0.0) -> float:
    """Log of the normal-mixture likelihood ratio for an estimate ~ N(theta, var) with
    mixing distribution theta ~ N(null, tau2):

    ``log sqrt(var / (var + tau2)) + tau2 (estimate - null)^2 / (2 var (var + tau2))``.
    """
    if var <= 0 or tau2 <= 0:
        return 0.0 if estimate == null else math.inf
    return 0.5 * math.log(var / (var + tau2)) + tau2 * (estimate - null) ** 2 / (
        2.0 * var * (var + tau2)
    )


def always_valid_p(log_lr: float, previous: float = 1.0) -> float:
    """Always-valid p-value after one more look: ``min(previous, 1 / LR)``."""
    if log_lr <= 0:
        return previous
    return min(previous, math.exp(-log_lr))


def confidence_sequence(
    estimate: float, var: float, tau2: float, alpha: float
) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence at this look: every null the mSPRT does not
    reject, ``estimate +- sqrt(var (var + tau2) / tau2 * (2 log(1/alpha) + log((var +
    tau2) / var)))``."""
    if var <= 0 or tau2 <= 0:
        return estimate, estimate
    half = math.sqrt(
        var * (var + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((var + tau2) / var))
    )
    return estimate - half, estimate + half


@dataclass(frozen=True, slots=True)
class Sequential:
    log_lr: float
    always_valid_p: float
    cs_low: float
    cs_high: float


def sequential_test(
    a: Moments,
    b: Moments,
    *,
    alpha: float,
    tuning_n: float,
    previous_p: float = 1.0,
) -> Sequential:
    """mSPRT of mean_b - mean_a = 0 with plug-in variance; ``previous_p`` is the running
    minimum from earlier looks (the always-valid p-value never increases)."""
    if a.n < 2 or b.n < 2:
        return Sequential(0.0, previous_p, -math.inf, math.inf)
    var = a.var_of_mean + b.var_of_mean
    unit_var = a.var + b.var
    tau2 = mixture_rho2(tuning_n, alpha) * unit_var
    diff = b.mean - a.mean
    llr = msprt_log_lr(diff, var, tau2)
    lo, hi = confidence_sequence(diff, var, tau2, alpha)
    return Sequential(llr, always_valid_p(llr, previous_p), lo, hi)


# ---------------------------------------------------------------------------------------
# Multiple arms, sample ratio mismatch.
# ---------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def srm_p_value(counts: Sequence[float], weights: Sequence[float]) -> float:
    """Chi-square goodness-of-fit p-value of observed arm counts against the split."""
    obs = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    total = obs.sum()
    keep = w > 0
    if np.any(obs[~keep] > 0):
        return 0.0  # units in an arm that should get no traffic
    if total <= 0 or keep.sum() < 2:
        return 1.0
    expected = total * w[keep] / w[keep].sum()
    chi2 = float(((obs[keep] - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(chi2, int(keep.sum()) - 1))


# ---------------------------------------------------------------------------------------
# Bayesian: chance to beat control and expected loss.
# ---------------------------------------------------------------------------------------


def _beta_prob_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(X > Y) for X ~ Beta(a1, b1), Y ~ Beta(a2, b2), by quadrature of f_X F_Y over
    the central 1 - 2e-12 of X's mass (break points at both medians)."""
    lo = float(stats.beta.ppf(1e-12, a1, b1))
    hi = float(stats.beta.isf(1e-12, a1, b1))
    pts = sorted(
        {
            p
            for p in (
                float(stats.beta.median(a1, b1)),
                float(stats.beta.median(a2, b2)),
                float(stats.beta.ppf(1e-6, a2, b2)),
                float(stats.beta.isf(1e-6, a2, b2)),
            )
            if lo < p < hi
        }
    )
    val, _ = integrate.quad(
        lambda x: stats.beta.pdf(x, a1, b1) * stats.beta.cdf(x, a2, b2),
        lo,
        hi,
        points=pts or None,
        limit=200,
        epsabs=1e-13,
        epsrel=1e-10,
    )
    return float(min(1.0, max(0.0, val)))


@dataclass(frozen=True, slots=True)
class Bayes:
    chance_to_beat_control: float
    expected_loss: float


def beta_binomial_bayes(
    successes_a: float,
    n_a: float,
    successes_b: float,
    n_b: float,
    *,
    higher_is_better: bool = True,
    prior: tuple[float, float] = (1.0, 1.0),
) -> Bayes:
    """Beta posteriors; chance that B beats A and the expected loss of choosing B,
    ``E[max(p_a - p_b, 0)]`` (the reverse when lower is better)."""
    aa, ba = prior[0] + successes_a, prior[1] + n_a - successes_a
    ab, bb = prior[0] + successes_b, prior[1] + n_b - successes_b
    if not higher_is_better:
        # lower is better: the "failure" rate is what must be high.
        aa, ba, ab, bb = ba, aa, bb, ab
    chance = _beta_prob_greater(ab, bb, aa, ba)
    mean_a, mean_b = aa / (aa + ba), ab / (ab + bb)
    loss = mean_a * _beta_prob_greater(aa + 1, ba, ab, bb) - mean_b * _beta_prob_greater(
        aa, ba, ab + 1, bb
    )
    return Bayes(chance, max(0.0, loss))


def normal_bayes(a: Moments, b: Moments, *, higher_is_better: bool = True) -> Bayes:
    """Flat-prior normal posterior of the difference of means."""
    diff = b.mean - a.mean
    if not higher_is_better:
        diff = -diff
    var = a.var_of_mean + b.var_of_mean
    if not var > 0:
        return Bayes(float(diff > 0) if diff != 0 else 0.5, max(0.0, -diff))
    sd = math.sqrt(var)
    chance = float(stats.norm.cdf(diff / sd))
    loss = sd * float(stats.norm.pdf(diff / sd)) - diff * float(stats.norm.cdf(-diff / sd))
    return Bayes(chance, max(0.0, loss))


def chance_to_be_best(samples: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Share of posterior draws (rows: draws, columns: arms) in which each arm is best."""
    best = samples.argmax(axis=1) if higher_is_better else samples.argmin(axis=1)
    counts = np.bincount(best, minlength=samples.shape[1])
    return np.asarray(counts / samples.shape[0], dtype=float)


# ---------------------------------------------------------------------------------------
# Power and sample size.
# ---------------------------------------------------------------------------------------


def power_two_proportions(p_a: float, p_b: float, n_per_arm: float, alpha: float = 0.05) -> float:
    """Power of the two-sided pooled z-test with ``n_per_arm`` units per arm."""
    delta = abs(p_b - p_a)
    pbar = (p_a + p_b) / 2
    se0 = math.sqrt(2 * pbar * (1 - pbar) / n_per_arm)
    se1 = math.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / n_per_arm)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return float(stats.norm.cdf((delta - z * se0) / se1) + stats.norm.cdf((-delta - z * se0) / se1))


def sample_size_two_proportions(
    p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm for the two-sided pooled z-test to reach ``power``."""
    if not (0 < p_a < 1 and 0 < p_b < 1) or p_a == p_b:
        raise ValueError("need two different proportions strictly between 0 and 1")
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    pbar = (p_a + p_b) / 2
    n = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    ) ** 2 / (p_b - p_a) ** 2
    return math.ceil(n)


def sample_size_means(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided two-sample z-test of a mean difference ``delta``."""
    if delta == 0 or sd <= 0:
        raise ValueError("need a non-zero difference and a positive standard deviation")
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    return math.ceil(2 * (za + zb) ** 2 * sd**2 / delta**2)


# ---------------------------------------------------------------------------------------
# CUPED: variance reduction with a pre-period covariate.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CovMoments:
    """Sums of the outcome y and the pre-period covariate x of an arm's units."""

    n: float
    sy: float
    syy: float
    sx: float
    sxx: float
    sxy: float

    def __add__(self, o: CovMoments) -> CovMoments:
        return CovMoments(
            self.n + o.n,
            self.sy + o.sy,
            self.syy + o.syy,
            self.sx + o.sx,
            self.sxx + o.sxx,
            self.sxy + o.sxy,
        )

    @property
    def y(self) -> Moments:
        return Moments(self.n, self.sy, self.syy)


def cuped_theta(arms: Sequence[CovMoments]) -> float:
    """``cov(y, x) / var(x)`` over the units of all arms (pooled)."""
    tot = arms[0]
    for m in arms[1:]:
        tot = tot + m
    if tot.n < 2:
        return 0.0
    sxx = tot.sxx - tot.sx**2 / tot.n
    if sxx <= 0:
        return 0.0
    return (tot.sxy - tot.sx * tot.sy / tot.n) / sxx


def cuped_adjust(arms: Sequence[CovMoments]) -> tuple[list[Moments], float]:
    """Moments of ``y - theta (x - mean_x)`` per arm (mean_x over all arms) and theta."""
    theta = cuped_theta(arms)
    n_all = sum(m.n for m in arms)
    mean_x = sum(m.sx for m in arms) / n_all if n_all else 0.0
    out: list[Moments] = []
    for m in arms:
        # y' = y - theta x + theta mean_x
        c = theta * mean_x
        s1 = m.sy - theta * m.sx + c * m.n
        s2 = (
            m.syy
            + theta**2 * m.sxx
            + c**2 * m.n
            - 2 * theta * m.sxy
            + 2 * c * m.sy
            - 2 * theta * c * m.sx
        )
        out.append(Moments(m.n, s1, s2))
    return out, theta


# ---------------------------------------------------------------------------------------
# Meta-analysis across finished experiments.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaResult:
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    tau2: float
    q: float
    i2: float


def meta_analysis(
    effects: Sequence[float],
    variances: Sequence[float],
    *,
    random_effects: bool = False,
    alpha: float = 0.05,
) -> MetaResult:
    """Inverse-variance fixed-effect, or DerSimonian-Laird random-effects, pooled effect."""
    y = np.asarray(effects, dtype=float)
    v = np.asarray(variances, dtype=float)
    if y.size == 0 or y.shape != v.shape or np.any(v <= 0):
        raise ValueError("need one positive variance per effect")
    w = 1.0 / v
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    k = y.size
    tau2 = 0.0
    if random_effects and k > 1:
        c = float(w.sum() - (w**2).sum() / w.sum())
        tau2 = max(0.0, (q - (k - 1)) / c)
    wr = 1.0 / (v + tau2)
    est = float((wr * y).sum() / wr.sum())
    se = math.sqrt(1.0 / float(wr.sum()))
    z = float(stats.norm.ppf(1 - alpha / 2))
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(est / se)))
    return MetaResult(est, se, est - z * se, est + z * se, p, tau2, q, i2)
