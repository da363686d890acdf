"""Two-sample statistics used by the drift detectors, on samples and on histograms.

Every function is pure and cheap enough to run once per feature per evaluation window
(never once per event). The sample versions exist to check the histogram versions and
the oracle tests compare both with SciPy (``ks_2samp``, ``chisquare``,
``jensenshannon``, ``wasserstein_distance``).

Conventions: probabilities are normalised here; ``eps`` guards logarithms of empty bins
in PSI (the usual 1e-4 floor) and is documented on each function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import bdtrc, chdtrc
from scipy.stats import kstwo

FloatArray = npt.NDArray[np.float64]

#: Floor applied to bin probabilities in PSI so an empty bin gives a large, finite term.
PSI_EPS = 1e-4


def ks_pvalue(d: float, n_reference: int, n_current: int) -> float:
    """Two-sided asymptotic p-value of a two-sample KS statistic (SciPy's ``asymp``).

    Uses the exact one-sample distribution at the effective size ``n m / (n + m)``,
    as ``scipy.stats.ks_2samp(method="asymp")`` does.
    """
    if n_reference <= 0 or n_current <= 0:
        return 1.0
    m, n = float(max(n_reference, n_current)), float(min(n_reference, n_current))
    en = max(1.0, round(m * n / (m + n)))
    # ``kstwo._sf`` is what ``kstwo.sf`` computes inside its argument checks (which cost
    # as much as the value itself here): the same for every d, also at 0 and 1
    return float(np.clip(kstwo._sf(d, en), 0.0, 1.0))


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """KS statistic (max ECDF distance) of two samples and its asymptotic p-value."""
    x = np.sort(np.asarray(a, dtype=np.float64))
    y = np.sort(np.asarray(b, dtype=np.float64))
    if x.size == 0 or y.size == 0:
        return 0.0, 1.0
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    return d, ks_pvalue(d, x.size, y.size)


def ks_binned(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """KS statistic between two histograms on the same ordered bins.

    Equals the sample statistic when every value sits in its own bin, and never exceeds
    it otherwise (the ECDFs are compared at bin edges only), so p-values are conservative.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())))


def _normalise(counts: npt.ArrayLike) -> FloatArray:
    p = np.asarray(counts, dtype=np.float64)
    total = p.sum()
    return p / total if total > 0 else np.zeros_like(p)


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index ``sum((c - r) ln(c / r))`` over shared bins.

    Bin shares below :data:`PSI_EPS` are floored to it. Conventional reading: < 0.1 no
    meaningful shift, 0.1-0.2 moderate, > 0.2 significant.
    """
    r = np.maximum(_normalise(reference_counts), PSI_EPS)
    c = np.maximum(_normalise(current_counts), PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon *distance* (square root of the divergence, base 2, in [0, 1]);
    the same quantity as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p = _normalise(reference_counts)
    q = _normalise(current_counts)
    m = 0.5 * (p + q)

    def kl(a: FloatArray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    div = 0.5 * kl(p) + 0.5 * kl(q)
    return math.sqrt(max(div, 0.0))


def wasserstein(
    u_values: npt.ArrayLike,
    v_values: npt.ArrayLike,
    u_weights: npt.ArrayLike | None = None,
    v_weights: npt.ArrayLike | None = None,
) -> float:
    """First Wasserstein (earth mover's) distance between two weighted 1-D samples.

    The area between the two CDFs, as ``scipy.stats.wasserstein_distance`` computes it.
    """
    u = np.asarray(u_values, dtype=np.float64)
    v = np.asarray(v_values, dtype=np.float64)
    uw = np.ones_like(u) if u_weights is None else np.asarray(u_weights, dtype=np.float64)
    vw = np.ones_like(v) if v_weights is None else np.asarray(v_weights, dtype=np.float64)
    keep_u, keep_v = uw > 0, vw > 0
    u, uw, v, vw = u[keep_u], uw[keep_u], v[keep_v], vw[keep_v]
    if u.size == 0 or v.size == 0:
        return 0.0
    grid = np.sort(np.concatenate([u, v]))
    ou, ov = np.argsort(u), np.argsort(v)
    cu = np.concatenate([[0.0], np.cumsum(uw[ou])]) / uw.sum()
    cv = np.concatenate([[0.0], np.cumsum(vw[ov])]) / vw.sum()
    fu = cu[np.searchsorted(u[ou], grid[:-1], side="right")]
    fv = cv[np.searchsorted(v[ov], grid[:-1], side="right")]
    return float(np.sum(np.abs(fu - fv) * np.diff(grid)))


def chi_square(observed: npt.ArrayLike, expected_probs: npt.ArrayLike) -> tuple[float, float]:
    """Pearson goodness-of-fit of ``observed`` counts against ``expected_probs``.

    Categories with zero expected probability must be handled by the caller (they are
    "unseen" categories, tested separately). Same statistic and p-value as
    ``scipy.stats.chisquare(observed, n * expected_probs)``.
    """
    o = np.asarray(observed, dtype=np.float64)
    p = _normalise(expected_probs)
    n = o.sum()
    if n <= 0 or o.size < 2:
        return 0.0, 1.0
    e = n * p
    stat = float(np.sum((o - e) ** 2 / e))
    return stat, float(chdtrc(o.size - 1, stat))


def binomial_excess_pvalue(successes: int, trials: int, p0: float) -> float:
    """One-sided exact p-value that a rate exceeds ``p0``: ``P(X >= successes)`` for
    ``X ~ Binomial(trials, p0)`` (``scipy.stats.binom.sf(successes - 1, trials, p0)``);
    1 when the count is at or below its expectation. The normal approximation used
    before was far off in the tail (5e-5 where the exact tail is 1.1e-3)."""
    if trials <= 0 or successes <= p0 * trials:
        return 1.0
    if p0 <= 0.0:
        return 0.0
    if p0 >= 1.0:
        return 1.0
    k = min(int(successes), int(trials))
    return float(min(1.0, max(0.0, bdtrc(k - 1, int(trials), p0))))


def pool_sparse(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, min_expected: float = 5.0
) -> tuple[FloatArray, FloatArray]:
    """Drop categories empty in both samples and pool those whose smaller expected
    count (under homogeneity) is below ``min_expected`` into one column; a pool still
    below it joins the rarest kept column. Keeps the chi-square approximation valid."""
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    nr, nc = r.sum(), c.sum()
    if nr <= 0 or nc <= 0 or r.size < 2 or min_expected <= 0:
        return r, c
    col = r + c
    small = col * min(nr, nc) / (nr + nc) < min_expected
    if not small.any():
        return r, c
    pr, pc = float(r[small].sum()), float(c[small].sum())
    r, c = r[~small], c[~small]
    pool_ok = (pr + pc) * min(nr, nc) / (nr + nc) >= min_expected
    if pool_ok or r.size == 0:
        return np.append(r, pr), np.append(c, pc)
    rarest = int(np.argmin(r + c))
    r[rarest] += pr
    c[rarest] += pc
    return r, c


def chi_square_contingency(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, min_expected: float = 5.0
) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity of two samples of counts over the same
    categories (a 2 x K contingency table, no continuity correction): both samples are
    random, so the reference counts are *not* treated as exact probabilities. Same
    statistic and p-value as ``scipy.stats.chi2_contingency([ref, cur], correction=False)``
    on the table :func:`pool_sparse` leaves. A category present in only one sample
    (e.g. a new category) is part of the test."""
    r, c = pool_sparse(reference_counts, current_counts, min_expected)
    nr, nc = r.sum(), c.sum()
    if nr <= 0 or nc <= 0 or r.size < 2:
        return 0.0, 1.0
    total = nr + nc
    col = r + c
    er, ec = col * nr / total, col * nc / total
    stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
    return stat, float(chdtrc(r.size - 1, stat))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    Rejecting every hypothesis with adjusted p <= q controls the false discovery rate
    at level q across the family (independent or positively dependent tests).
    """
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted
