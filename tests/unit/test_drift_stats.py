"""Drift statistics against SciPy on random samples, and BH against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance
from statsmodels.stats.multitest import multipletests

from modelguard.core.drift import stats


@pytest.mark.parametrize("seed", range(8))
def test_ks_two_sample_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rng.integers(50, 400))
    b = rng.normal(rng.uniform(0, 0.5), 1, size=rng.integers(50, 400))
    d, p = stats.ks_two_sample(a, b)
    ref = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_binned_ks_equals_sample_ks_on_integer_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 30, size=500)
    b = rng.integers(3, 33, size=300)
    ref = np.bincount(a, minlength=33)
    cur = np.bincount(b, minlength=33)
    assert stats.ks_binned(ref, cur) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_chi_square_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(6))
    obs = rng.multinomial(1000, rng.dirichlet(np.ones(6) * 5))
    stat, pv = stats.chi_square(obs, p)
    ref = chisquare(obs, obs.sum() * p)
    assert stat == pytest.approx(ref.statistic, rel=1e-10)
    assert pv == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.integers(0, 50, size=10), rng.integers(0, 50, size=10)
    assert stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_wasserstein_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=200), rng.standard_t(3, size=150)
    uw, vw = rng.uniform(size=200), rng.uniform(size=150)
    assert stats.wasserstein(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-10)
    assert stats.wasserstein(u, v, uw, vw) == pytest.approx(
        wasserstein_distance(u, v, uw, vw), rel=1e-10
    )


def test_psi_known_values() -> None:
    assert stats.psi([1, 1], [1, 1]) == 0.0
    # closed form: (0.6-0.4) ln(0.6/0.4) + (0.4-0.6) ln(0.4/0.6)
    assert stats.psi([4, 6], [6, 4]) == pytest.approx(0.4 * np.log(1.5))
    assert stats.psi([10, 0], [5, 5]) > 1.0  # empty reference bin: floored, large


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_benjamini_hochberg_matches_statsmodels(p: list[float]) -> None:
    ours = stats.benjamini_hochberg(p)
    ref = multipletests(p, method="fdr_bh")[1]
    assert np.allclose(ours, ref, atol=1e-12)


def test_binomial_excess_pvalue() -> None:
    assert stats.binomial_excess_pvalue(5, 100, 0.1) == 1.0
    assert stats.binomial_excess_pvalue(30, 100, 0.1) < 1e-6
    assert stats.binomial_excess_pvalue(1, 100, 0.0) == 0.0
