"""Experiment statistics against independent oracles: SciPy, statsmodels, closed forms
and seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from modelguard.core.experiments import stats as st_


def test_two_proportion_ztest_matches_statsmodels() -> None:
    res = st_.two_proportion_ztest(480, 5000, 560, 5100)
    z, p = proportions_ztest([560, 480], [5100, 5000])
    assert res.statistic == pytest.approx(z, rel=1e-10)
    assert res.p_value == pytest.approx(p, rel=1e-10)
    pa, pb = 480 / 5000, 560 / 5100
    se = math.sqrt(pa * (1 - pa) / 5000 + pb * (1 - pb) / 5100)
    assert res.ci_low == pytest.approx(pb - pa - 1.959963984540054 * se, rel=1e-9)


@given(
    xa=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40),
    xb=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_welch_matches_scipy_and_statsmodels(xa: list[float], xb: list[float]) -> None:
    a, b = np.asarray(xa), np.asarray(xb)
    if a.var() < 1e-6 or b.var() < 1e-6:
        return
    res = st_.welch_ttest(st_.Moments.of(a), st_.Moments.of(b))
    oracle = sps.ttest_ind(b, a, equal_var=False)
    assert res.statistic == pytest.approx(oracle.statistic, rel=1e-6, abs=1e-9)
    assert res.p_value == pytest.approx(oracle.pvalue, rel=1e-5, abs=1e-9)
    lo, hi = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(usevar="unequal")
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=1e-6, abs=1e-6)


def test_moments_merge_equals_whole() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, 1000)
    whole = st_.Moments.of(x)
    parts = st_.Moments.of(x[:300]) + st_.Moments.of(x[300:])
    assert parts.mean == pytest.approx(whole.mean)
    assert parts.var == pytest.approx(np.var(x, ddof=1))


def test_relative_lift_ci_covers_at_nominal_rate() -> None:
    """Delta-method CI of the relative lift: coverage by simulation (2,000 experiments)."""
    rng = np.random.default_rng(7)
    n, pa, pb = 4000, 0.10, 0.12
    sa, sb = rng.binomial(n, pa, 2000), rng.binomial(n, pb, 2000)
    true = pb / pa - 1
    hits = 0
    for x, y in zip(sa, sb, strict=True):
        r = st_.two_proportion_ztest(float(x), n, float(y), n)
        hits += r.relative_ci_low <= true <= r.relative_ci_high
    assert 0.93 <= hits / 2000 <= 0.97


def test_msprt_closed_form_matches_numerical_mixture() -> None:
    est, var, tau2 = 0.013, 2.5e-5, 4e-5
    num, _ = integrate.quad(
        lambda th: (
            sps.norm.pdf(est, th, math.sqrt(var))
            / sps.norm.pdf(est, 0, math.sqrt(var))
            * sps.norm.pdf(th, 0, math.sqrt(tau2))
        ),
        -0.1,
        0.1,
        points=[0.0, est],
    )
    assert st_.msprt_log_lr(est, var, tau2) == pytest.approx(math.log(num), rel=1e-7)
    lo, hi = st_.confidence_sequence(est, var, tau2, 0.05)
    # the boundary of the confidence sequence is where the mixture LR crosses 1/alpha
    for edge in (lo, hi):
        assert st_.msprt_log_lr(est, var, tau2, null=edge) == pytest.approx(math.log(20), rel=1e-9)


def test_always_valid_p_never_increases() -> None:
    p = 1.0
    for llr in [0.5, 2.0, 1.0, 3.5, -1.0, 0.2]:
        new = st_.always_valid_p(llr, p)
        assert new <= p
        p = new
    assert p == pytest.approx(math.exp(-3.5))


def test_sequential_aa_false_positive_rate_under_alpha_when_checked_every_event() -> None:
    """250 A/A binary experiments, 2,000 units each, looked at after every unit (the
    benchmark runs 10,000); a naive repeated z-test rejects in about a third of them."""
    rng = np.random.default_rng(11)
    reps, n = 250, 2000
    arm = rng.integers(0, 2, (reps, n))
    y = (rng.random((reps, n)) < 0.2).astype(float)
    ca = np.cumsum(arm == 0, axis=1).astype(float)
    cb = np.cumsum(arm == 1, axis=1).astype(float)
    sa = np.cumsum(y * (arm == 0), axis=1)
    sb = np.cumsum(y * (arm == 1), axis=1)
    rho2 = st_.mixture_rho2(1000, 0.05)
    p, lo, hi = np.ones(reps), np.full(reps, -np.inf), np.full(reps, np.inf)
    for i in range(n):  # the service's per-look functions, vectorised over experiments
        with np.errstate(divide="ignore", invalid="ignore"):
            ma, mb = sa[:, i] / ca[:, i], sb[:, i] / cb[:, i]
        llr, l_lo, l_hi, _ = st_.sequential_look(
            ca[:, i], ma, np.nan, cb[:, i], mb, np.nan,
            alpha=0.05, rho2=rho2, burn_in=50, binary=True,
        )  # fmt: skip
        p, lo, hi = st_.running_update(p, lo, hi, llr, l_lo, l_hi)
    rejected = int((p <= 0.05).sum())
    # the scalar API gives the same running p
    one = st_.SequentialState()
    for i in range(n):
        one = st_.sequential_test(
            st_.Moments.binary(float(sa[0, i]), float(ca[0, i])),
            st_.Moments.binary(float(sb[0, i]), float(cb[0, i])),
            alpha=0.05, rho2=rho2, previous=one, burn_in=50, binary=True,
        ).state  # fmt: skip
    assert one.p == pytest.approx(float(p[0]))
    # the lower end of a 99.9% binomial interval must stay under alpha
    assert sps.binomtest(rejected, reps).proportion_ci(0.999).low <= 0.05
    assert rejected / reps <= 0.07


def test_holm_matches_statsmodels() -> None:
    ps = [0.01, 0.04, 0.03, 0.005, 0.2, 0.049]
    assert st_.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_srm_matches_scipy_chisquare() -> None:
    counts, w = [5100, 4900, 10_300], [0.25, 0.25, 0.5]
    expected = np.asarray(w) * sum(counts)
    assert st_.srm_p_value(counts, w) == pytest.approx(sps.chisquare(counts, expected).pvalue)
    assert st_.srm_p_value([10, 5], [1.0, 0.0]) == 0.0


def _miller_prob_b_beats_a(aa: int, ba: int, ab: int, bb: int) -> float:
    """Evan Miller's closed form of P(p_B > p_A) for integer Beta parameters."""
    total = 0.0
    for i in range(ab):
        total += math.exp(
            special.betaln(aa + i, ba + bb)
            - math.log(bb + i)
            - special.betaln(1 + i, bb)
            - special.betaln(aa, ba)
        )
    return total


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), [(30, 200, 45, 210), (120, 1000, 100, 1000)])
def test_chance_to_beat_control_matches_closed_form(sa: int, na: int, sb: int, nb: int) -> None:
    res = st_.beta_binomial_bayes(sa, na, sb, nb)
    oracle = _miller_prob_b_beats_a(1 + sa, 1 + na - sa, 1 + sb, 1 + nb - sb)
    assert res.chance_to_beat_control == pytest.approx(oracle, abs=1e-8)


def test_expected_loss_matches_simulation() -> None:
    rng = np.random.default_rng(5)
    res = st_.beta_binomial_bayes(1000, 10_000, 1040, 10_000)
    pa = rng.beta(1001, 9001, 2_000_000)
    pb = rng.beta(1041, 8961, 2_000_000)
    assert res.chance_to_beat_control == pytest.approx((pb > pa).mean(), abs=2e-3)
    assert res.expected_loss == pytest.approx(np.maximum(pa - pb, 0).mean(), rel=0.02)
    low = st_.beta_binomial_bayes(1000, 10_000, 1040, 10_000, higher_is_better=False)
    assert low.chance_to_beat_control == pytest.approx((pb < pa).mean(), abs=2e-3)
    assert low.expected_loss == pytest.approx(np.maximum(pb - pa, 0).mean(), rel=0.02)


def test_normal_bayes_matches_simulation() -> None:
    rng = np.random.default_rng(9)
    a, b = st_.Moments.of(rng.normal(10, 3, 500)), st_.Moments.of(rng.normal(10.3, 3, 500))
    res = st_.normal_bayes(a, b)
    draws = rng.normal(b.mean - a.mean, math.sqrt(a.var_of_mean + b.var_of_mean), 2_000_000)
    assert res.chance_to_beat_control == pytest.approx((draws > 0).mean(), abs=2e-3)
    assert res.expected_loss == pytest.approx(np.maximum(-draws, 0).mean(), rel=0.02)


def test_sample_size_for_means_matches_statsmodels() -> None:
    n = st_.sample_size_means(delta=0.5, sd=2.0, alpha=0.05, power=0.8)
    oracle = NormalIndPower().solve_power(effect_size=0.25, alpha=0.05, power=0.8, ratio=1.0)
    assert n == math.ceil(oracle)


def test_sample_size_for_proportions_reaches_power_in_simulation() -> None:
    n = st_.sample_size_two_proportions(0.10, 0.12, alpha=0.05, power=0.8)
    assert st_.power_two_proportions(0.10, 0.12, n) == pytest.approx(0.8, abs=2e-3)
    # classic textbook figure for 10% -> 12%: about 3,840 per arm
    assert 3800 <= n <= 3870
    rng = np.random.default_rng(2)
    sa, sb = rng.binomial(n, 0.10, 3000), rng.binomial(n, 0.12, 3000)
    hits = [proportions_ztest([b, a], [n, n])[1] < 0.05 for a, b in zip(sa, sb, strict=True)]
    assert np.mean(hits) == pytest.approx(0.8, abs=0.025)


def test_cuped_equals_welch_on_adjusted_units_and_reduces_variance() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    xa, xb = rng.normal(50, 10, n), rng.normal(50, 10, n)
    ya = 0.8 * xa + rng.normal(0, 5, n)
    yb = 0.8 * xb + rng.normal(0.5, 5, n)

    def cov(x: np.ndarray, y: np.ndarray) -> st_.CovMoments:
        return st_.CovMoments(len(x), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum())

    adjusted, theta = st_.cuped_adjust([cov(xa, ya), cov(xb, yb)])
    x_all, y_all = np.concatenate([xa, xb]), np.concatenate([ya, yb])
    theta_oracle = np.cov(y_all, x_all)[0, 1] / np.var(x_all, ddof=1)
    assert theta == pytest.approx(theta_oracle, rel=1e-9)
    ya2, yb2 = ya - theta_oracle * (xa - x_all.mean()), yb - theta_oracle * (xb - x_all.mean())
    res = st_.welch_ttest(adjusted[0], adjusted[1])
    oracle = sps.ttest_ind(yb2, ya2, equal_var=False)
    assert res.statistic == pytest.approx(oracle.statistic, rel=1e-6)
    plain = st_.welch_ttest(st_.Moments.of(ya), st_.Moments.of(yb))
    rho2 = np.corrcoef(x_all, y_all)[0, 1] ** 2
    assert res.se**2 / plain.se**2 == pytest.approx(1 - rho2, rel=0.05)


@pytest.mark.parametrize("random_effects", [False, True])
def test_meta_analysis_matches_statsmodels(random_effects: bool) -> None:
    eff = [0.02, 0.035, -0.005, 0.05, 0.01]
    var = [1e-4, 2e-4, 1.5e-4, 3e-4, 0.8e-4]
    res = st_.meta_analysis(eff, var, random_effects=random_effects)
    oracle = combine_effects(np.array(eff), np.array(var), method_re="dl")
    row = "random effect" if random_effects else "fixed effect"
    frame = oracle.summary_frame()
    assert res.estimate == pytest.approx(frame.loc[row, "eff"], rel=1e-9)
    assert res.se == pytest.approx(frame.loc[row, "sd_eff"], rel=1e-9)
    assert res.ci_low == pytest.approx(frame.loc[row, "ci_low"], rel=1e-9)
    assert res.q == pytest.approx(oracle.q, rel=1e-9)
    if random_effects:
        assert res.tau2 == pytest.approx(oracle.tau2, rel=1e-9)
