"""Frequentist and Bayesian statistics of A/B experiments, from sufficient statistics.

Everything here works on counts and sums (``Moments``), so an experiment with millions
of units is analysed in microseconds. Each function is checked against an independent
oracle (SciPy, statsmodels, closed forms or simulation) in ``tests/unit/test_stats*.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, special, stats


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, mean and ``m2`` (sum of squared deviations from the mean) of unit-level
    values. Merged with Chan et al.'s parallel update (``+``), so no raw sum of squares
    is ever formed: the variance stays exact to rounding at any mean (a raw
    ``sum(x^2) - sum(x)^2 / n`` loses every digit once mean^2 / var approaches 1e16)."""

    n: float
    mu: float
    m2: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Moments:
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            return cls(0.0, 0.0, 0.0)
        mu = float(arr.mean())
        return cls(float(arr.size), mu, float(np.square(arr - mu).sum()))

    @classmethod
    def binary(cls, successes: float, n: float) -> Moments:
        if n <= 0:
            return cls(0.0, 0.0, 0.0)
        return cls(n, successes / n, successes * (n - successes) / n)

    @classmethod
    def from_sums(cls, n: float, total: float, total_sq: float) -> Moments:
        """From raw sums (for inputs that only exist as sums, e.g. CUPED-adjusted)."""
        if n <= 0:
            return cls(0.0, 0.0, 0.0)
        mu = total / n
        return cls(n, mu, max(0.0, total_sq - total * mu))

    def __add__(self, other: Moments) -> Moments:
        return chan_merge(self, other)

    @property
    def total(self) -> float:
        return self.n * self.mu

    @property
    def mean(self) -> float:
        return self.mu if self.n > 0 else math.nan

    @property
    def var(self) -> float:
        """Sample variance (ddof=1); NaN below two observations."""
        if self.n < 2:
            return math.nan
        return max(0.0, self.m2 / (self.n - 1))

    @property
    def var_of_mean(self) -> float:
        return self.var / self.n if self.n >= 2 else math.nan


def chan_merge(a: Moments, b: Moments) -> Moments:
    """Chan, Golub & LeVeque's pairwise update of (count, mean, m2)."""
    n = a.n + b.n
    if n <= 0:
        return Moments(0.0, 0.0, 0.0)
    if a.n <= 0:
        return b
    if b.n <= 0:
        return a
    delta = b.mu - a.mu
    return Moments(n, a.mu + delta * (b.n / n), a.m2 + b.m2 + delta * delta * (a.n * b.n / n))


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

    A degenerate look (no positive, finite variance) carries no evidence: 0.
    """
    llr, _, _ = msprt_look(estimate - null, var, tau2, 0.05)
    return float(llr)


def always_valid_p(log_lr: float, previous: float = 1.0) -> float:
    """Always-valid p-value after one more look: ``min(previous, 1 / LR)``."""
    if log_lr <= 0:
        return previous
    return min(previous, math.exp(-log_lr))


FloatArray = np.ndarray


def msprt_look(
    diff: float | FloatArray, var: float | FloatArray, tau2: float | FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One look of the mSPRT, vectorised: log LR against 0 and the (1 - alpha) confidence
    set ``diff +- sqrt(var (var + tau2) / tau2 (2 log(1/alpha) + log((var + tau2) / var)))``
    (every null the mixture does not reject at this look; 0 is outside it exactly when
    ``exp(-log LR) <= alpha``). Degenerate looks (variance not positive and finite, or
    a non-finite difference) carry no evidence: log LR 0 and the whole real line."""
    d, v, t = np.broadcast_arrays(
        np.asarray(diff, dtype=float), np.asarray(var, dtype=float), np.asarray(tau2, dtype=float)
    )
    ok = np.isfinite(d) & np.isfinite(v) & np.isfinite(t) & (v > 0) & (t > 0)
    v = np.where(ok, v, 1.0)
    t = np.where(ok, t, 1.0)
    d = np.where(ok, d, 0.0)
    llr = 0.5 * np.log(v / (v + t)) + t * d * d / (2.0 * v * (v + t))
    half = np.sqrt(v * (v + t) / t * (2.0 * math.log(1.0 / alpha) + np.log((v + t) / v)))
    return (
        np.where(ok, llr, 0.0),
        np.where(ok, d - half, -np.inf),
        np.where(ok, d + half, np.inf),
    )


def confidence_sequence(
    estimate: float, var: float, tau2: float, alpha: float
) -> tuple[float, float]:
    """The (1 - alpha) confidence set of one look (see :func:`msprt_look`); a degenerate
    look gives the whole real line."""
    _, lo, hi = msprt_look(estimate, var, tau2, alpha)
    return float(lo), float(hi)


def binary_unit_variance(successes: float | FloatArray, n: float | FloatArray) -> FloatArray:
    """Bernoulli variance at the Agresti-Caffo-shrunk rate ``(s + 1) / (n + 2)``: never 0
    (so 0/2 vs 2/2 is not infinitely significant) and close to ``p (1 - p)`` once
    there are a few successes and failures."""
    p = (np.asarray(successes, dtype=float) + 1.0) / (np.asarray(n, dtype=float) + 2.0)
    return np.asarray(p * (1.0 - p), dtype=float)


#: A binary look counts only once the smaller arm expects this many successes and this
#: many failures at the pooled rate (the normal approximation's usual n p >= 10 rule):
#: below it a 10% arm of a 2% metric rejects too often even after the burn-in.
MIN_EXPECTED_EVENTS = 10.0


def sequential_look(
    n_a: float | FloatArray,
    mean_a: float | FloatArray,
    var_a: float | FloatArray,
    n_b: float | FloatArray,
    mean_b: float | FloatArray,
    var_b: float | FloatArray,
    *,
    alpha: float,
    rho2: float,
    burn_in: float,
    binary: bool,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """One look of the service's mSPRT of ``mean_b - mean_a = 0``, vectorised over
    experiments (the benchmarks call this same function): log LR, confidence-set bounds
    and whether the look counts. A look counts only when both arms have ``burn_in``
    units (at least 2) and a positive pooled unit variance; for binary metrics the
    variances are :func:`binary_unit_variance` (the given ``var_*`` are ignored) and
    the smaller arm must also expect ``MIN_EXPECTED_EVENTS`` successes and failures;
    for continuous metrics the variance of the difference is never below its pooled
    (equal-variance) form.
    The mixing variance is ``tau2 = rho2 (var_a + var_b)``."""
    na = np.asarray(n_a, dtype=float)
    nb = np.asarray(n_b, dtype=float)
    ma = np.asarray(mean_a, dtype=float)
    mb = np.asarray(mean_b, dtype=float)
    floor = max(float(burn_in), 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if binary:
            va = binary_unit_variance(na * ma, na)
            vb = binary_unit_variance(nb * mb, nb)
            pooled = (na * ma + nb * mb) / np.maximum(na + nb, 1.0)
            events = np.minimum(na, nb) * np.minimum(pooled, 1.0 - pooled)
            enough = events >= MIN_EXPECTED_EVENTS
        else:
            va = np.asarray(var_a, dtype=float)
            vb = np.asarray(var_b, dtype=float)
            enough = np.ones(np.broadcast(na, nb).shape, dtype=bool)
        counted = enough & (na >= floor) & (nb >= floor) & np.isfinite(va + vb) & (va + vb > 0)
        safe_na = np.where(counted, na, 1.0)
        safe_nb = np.where(counted, nb, 1.0)
        var = va / safe_na + vb / safe_nb
        if not binary:
            # never below the pooled (equal-variance) form: a small arm's sample variance
            # of a skewed metric is often far too small, and under the null both arms
            # share one variance, which the pooled estimate takes mostly from the large arm
            pooled_var = ((na - 1) * va + (nb - 1) * vb) / np.maximum(na + nb - 2, 1.0)
            var = np.maximum(var, pooled_var * (1 / safe_na + 1 / safe_nb))
        var = np.where(counted, var, 0.0)
        tau2 = rho2 * np.where(counted, va + vb, 0.0)
        llr, lo, hi = msprt_look(np.where(counted, mb - ma, 0.0), var, tau2, alpha)
    return llr, lo, hi, counted.astype(float)


def running_update(
    previous_p: float | FloatArray,
    previous_low: float | FloatArray,
    previous_high: float | FloatArray,
    log_lr: float | FloatArray,
    low: float | FloatArray,
    high: float | FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Fold one look into the running state: the always-valid p is the running minimum
    of ``min(1, 1 / LR)`` and the confidence sequence the running intersection of the
    looks' confidence sets (so it excludes 0 whenever the always-valid p <= alpha)."""
    look_p = np.minimum(1.0, np.exp(-np.maximum(np.asarray(log_lr, dtype=float), 0.0)))
    return (
        np.minimum(np.asarray(previous_p, dtype=float), look_p),
        np.maximum(np.asarray(previous_low, dtype=float), low),
        np.minimum(np.asarray(previous_high, dtype=float), high),
    )


@dataclass(frozen=True, slots=True)
class SequentialState:
    """What the service keeps between looks (per metric and arm): the always-valid p
    and the running confidence sequence."""

    p: float = 1.0
    cs_low: float = -math.inf
    cs_high: float = math.inf


@dataclass(frozen=True, slots=True)
class Sequential:
    log_lr: float
    always_valid_p: float
    cs_low: float
    cs_high: float
    counted: bool = True

    @property
    def state(self) -> SequentialState:
        return SequentialState(self.always_valid_p, self.cs_low, self.cs_high)

    def direction(self, alpha: float) -> int:
        """+1 / -1 when the running confidence sequence lies above / below 0 and the
        always-valid p is at most ``alpha`` (the direction of the significant looks);
        0 otherwise (also when the looks contradict each other: empty sequence)."""
        if self.always_valid_p > alpha or self.cs_low > self.cs_high:
            return 0
        if self.cs_low > 0:
            return 1
        if self.cs_high < 0:
            return -1
        return 0


def sequential_test(
    a: Moments,
    b: Moments,
    *,
    alpha: float,
    tuning_n: float | None = None,
    rho2: float | None = None,
    previous: SequentialState | None = None,
    previous_p: float = 1.0,
    burn_in: float = 2.0,
    binary: bool = False,
) -> Sequential:
    """mSPRT of ``mean_b - mean_a = 0`` (:func:`sequential_look`) folded into the state of
    earlier looks (``previous``, or just ``previous_p``). ``rho2`` defaults to
    :func:`mixture_rho2` at ``tuning_n``. Looks before the burn-in leave the state as
    it was."""
    if rho2 is None:
        if tuning_n is None:
            raise ValueError("need rho2 or tuning_n")
        rho2 = mixture_rho2(tuning_n, alpha)
    prev = previous or SequentialState(p=previous_p)
    llr, lo, hi, counted = sequential_look(
        a.n,
        a.mu,
        a.var if a.n >= 2 else math.nan,
        b.n,
        b.mu,
        b.var if b.n >= 2 else math.nan,
        alpha=alpha,
        rho2=rho2,
        burn_in=burn_in,
        binary=binary,
    )
    p, low, high = running_update(prev.p, prev.cs_low, prev.cs_high, llr, lo, hi)
    return Sequential(float(llr), float(p), float(low), float(high), bool(counted))


# ---------------------------------------------------------------------------------------
# Planning: mixture tuned to a minimum detectable effect and horizon; expected power.
# ---------------------------------------------------------------------------------------

#: Looks (equally spaced in units from the burn-in to the horizon) in the power
#: recursion; the service looks more often, so the computed power is a lower bound.
POWER_LOOKS = 60
_POWER_GRID = 241


@lru_cache(maxsize=256)
def sequential_power(
    effect: float, horizon: float, *, alpha: float, rho2: float, burn_in: float
) -> float:
    """Probability that the mSPRT (equal arms, known unit variance) rejects in the right
    direction by ``horizon`` units per arm when the true difference is ``effect`` unit
    standard deviations, looking ``POWER_LOOKS`` times between ``burn_in`` and the
    horizon. Exact recursive integration of the crossing probabilities of the score
    process (Armitage, McPherson & Rowe), as in group-sequential design software."""
    d = abs(effect)
    start = max(float(burn_in), 2.0)
    if horizon <= start:
        return 0.0
    ns = np.linspace(start, float(horizon), POWER_LOOKS)
    info = ns / 2.0  # information of the difference, in 1 / sigma^2 units
    # boundary on z at each look: exp(-llr) <= alpha <=> |z| >= c
    r = rho2 * ns  # tau2 / var
    c = np.sqrt((1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + np.log1p(r)))
    bounds = c * np.sqrt(info)  # on the score S = z sqrt(info) ~ N(d info, info)

    def cells(b: float) -> tuple[np.ndarray, float]:
        """Midpoints of ``_POWER_GRID`` cells over the continuation region (-b, b)."""
        h = 2.0 * b / _POWER_GRID
        return -b + h * (np.arange(_POWER_GRID) + 0.5), h

    grid, h = cells(float(bounds[0]))
    dens = stats.norm.pdf(grid, d * info[0], math.sqrt(info[0]))
    power = float(stats.norm.sf(bounds[0], d * info[0], math.sqrt(info[0])))
    for k in range(1, POWER_LOOKS):
        sd = math.sqrt(info[k] - info[k - 1])
        w = dens * h
        mean_next = grid + d * (info[k] - info[k - 1])
        power += float(w @ special.ndtr((mean_next - bounds[k]) / sd))
        grid, h = cells(float(bounds[k]))
        u = (grid[None, :] - mean_next[:, None]) / sd
        dens = w @ (np.exp(-0.5 * u * u) / (sd * math.sqrt(2.0 * math.pi)))
    return min(1.0, power)


def fixed_horizon_power(effect: float, horizon: float, alpha: float) -> float:
    """Power of the two-sided z-test at ``horizon`` units per arm (effect in unit sds)."""
    z = float(stats.norm.ppf(1 - alpha / 2))
    shift = abs(effect) * math.sqrt(horizon / 2.0)
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


@lru_cache(maxsize=256)
def tuned_rho2(effect: float, horizon: float, *, alpha: float, burn_in: float) -> float:
    """The mixing variance (per unit of variance) that maximises :func:`sequential_power`
    for ``effect`` by ``horizon`` (a golden-section search on log rho2 between a
    hundredth and a hundred times the horizon-tightest :func:`mixture_rho2`)."""
    base = math.log(mixture_rho2(horizon, alpha))
    lo, hi = base - math.log(100.0), base + math.log(100.0)

    def loss(x: float) -> float:
        return -sequential_power(effect, horizon, alpha=alpha, rho2=math.exp(x), burn_in=burn_in)

    g = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = loss(x1), loss(x2)
    for _ in range(20):  # bracket shrinks to 0.6**20 = 4e-5 of its width
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - g * (hi - lo)
            f1 = loss(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + g * (hi - lo)
            f2 = loss(x2)
    return math.exp((lo + hi) / 2.0)


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


def srm_p_value_banded(
    counts: Sequence[float], expected_low: Sequence[float], expected_high: Sequence[float]
) -> float:
    """SRM p-value when each arm's expected count is only known to lie in
    ``[expected_low, expected_high]`` (units routed around a split change, when clients
    may still use the old split). The Pearson statistic is minimised over the expected
    counts in that box that sum to the observed total (KKT: ``E_a = clip(c O_a, low_a,
    high_a)``, ``c`` by bisection), so the test is conservative: under no mismatch the
    true expected counts are in the box and the statistic can only be smaller.
    Equal bounds give :func:`srm_p_value`'s chi-square."""
    obs = np.asarray(counts, dtype=float)
    lo = np.asarray(expected_low, dtype=float)
    hi = np.maximum(np.asarray(expected_high, dtype=float), lo)
    total = float(obs.sum())
    live = hi > 0
    if np.any(obs[~live] > 0):
        return 0.0  # units in an arm that should get no traffic
    if total <= 0 or live.sum() < 2:
        return 1.0
    lo, hi, obs = lo[live], hi[live], obs[live]
    # the bands are shares of the same total; rescale so they can reach it
    lo = lo * min(1.0, total / lo.sum()) if lo.sum() > 0 else lo
    hi = hi * max(1.0, total / hi.sum())

    def expected(c: float) -> np.ndarray:
        return np.asarray(np.clip(c * obs, lo, hi), dtype=float)

    slack = 1e-12 * total
    top = 1.0
    while expected(top).sum() < total - slack and top < 1e12:
        top *= 2.0
    e = expected(top)
    if e.sum() < total - slack:  # only arms without units can take the rest
        room = (hi - e) * (obs == 0)
        if room.sum() > 0:
            e = e + room * (total - e.sum()) / room.sum()
    else:
        bottom = 0.0
        for _ in range(100):
            mid = (bottom + top) / 2.0
            if expected(mid).sum() < total - slack:
                bottom = mid
            else:
                top = mid
        e = expected(top)
    e = e * total / e.sum()
    keep = e > 0
    chi2 = float(((obs[keep] - e[keep]) ** 2 / e[keep]).sum())
    return float(stats.chi2.sf(chi2, int(live.sum()) - 1))


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
        return Moments.from_sums(self.n, self.sy, self.syy)


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
        out.append(Moments.from_sums(m.n, s1, s2))
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
