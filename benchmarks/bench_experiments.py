"""Experiment statistics benchmark (prints one JSON object).

Looks here are after every unit with the burn-in as a fixed parameter; the
service-condition suite (looks from the first unit at the service's schedule, unequal
allocations, rare rates, bandit epochs) is ``bench_experiments_validity.py``.

1. A/A: 10,000 binary experiments (p = 0.10, 50/50 Bernoulli assignment, 10,000 units
   each) looked at after *every* unit: false positive rate of the always-valid mSPRT
   (the service's test) with a 95% Clopper-Pearson interval, beside the naive repeated
   fixed-horizon z-test and a single fixed-horizon look at the end.
2. Power: 0.10 -> 0.12 (20% relative lift): median units to a decision of the mSPRT,
   vs the fixed-horizon sample size at the same power (and at 80%).
3. Speed: analysis of an experiment with 10 million exposures (state is counts) vs a
   same-run baseline that computes the z-test from the 10 million raw unit values.

Both simulations are vectorised with numpy (chunks of experiments x units); seeds are
fixed arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy import stats as sps

from modelguard.contracts.experiments import ExperimentSpec, GuardrailMetric
from modelguard.core.experiments import stats
from modelguard.core.experiments.analysis import SplitEpoch, analyze
from modelguard.core.experiments.bookkeeping import ACC_SIZE, ExperimentPartial

ALPHA = 0.05


def _simulate(
    rng: np.random.Generator,
    reps: int,
    n: int,
    p_a: float,
    p_b: float,
    tuning_n: float,
    burn_in: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per experiment: first unit index where the mSPRT rejects (-1: never), whether the
    naive repeated z-test ever rejects, whether the final fixed look rejects."""
    arm = rng.random((reps, n)) < 0.5  # True: treatment
    u = rng.random((reps, n))
    y = np.where(arm, u < p_b, u < p_a)
    nb = np.cumsum(arm, axis=1, dtype=np.float64)
    na = np.arange(1, n + 1, dtype=np.float64)[None, :] - nb
    sb = np.cumsum(y & arm, axis=1, dtype=np.float64)
    sa = np.cumsum(y & ~arm, axis=1, dtype=np.float64)
    del arm, u, y
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb = sa / na, sb / nb
        # the service's per-look function (burn-in, event rule, Agresti-Caffo variance)
        llr, _, _, counted = stats.sequential_look(
            na, pa, np.nan, nb, pb, np.nan,
            alpha=ALPHA, rho2=stats.mixture_rho2(tuning_n, ALPHA), burn_in=burn_in, binary=True,
        )  # fmt: skip
        diff = pb - pa
        pooled = (sa + sb) / (na + nb)
        z = diff / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    ok = (na >= burn_in) & (nb >= burn_in) & (pooled > 0) & (pooled < 1)
    seq_reject = (counted > 0) & (llr >= math.log(1 / ALPHA))
    naive_reject = ok & (np.abs(z) >= sps.norm.ppf(1 - ALPHA / 2))
    first = np.where(seq_reject.any(axis=1), seq_reject.argmax(axis=1), -1)
    # spot check: the vectorised statistic equals the service's scalar function
    i, j = 0, n - 1
    scalar = stats.sequential_test(
        stats.Moments.binary(sa[i, j], na[i, j]),
        stats.Moments.binary(sb[i, j], nb[i, j]),
        alpha=ALPHA,
        tuning_n=tuning_n,
        burn_in=burn_in,
        binary=True,
    )
    assert math.isclose(scalar.log_lr, float(llr[i, j]), rel_tol=1e-9, abs_tol=1e-12)
    return first, naive_reject.any(axis=1), np.abs(z[:, -1]) >= sps.norm.ppf(1 - ALPHA / 2)


def _cp(k: int, n: int) -> list[float]:
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    return [round(ci.low, 4), round(ci.high, 4)]


def aa(rng: np.random.Generator, reps: int, n: int, chunk: int, burn_in: int) -> dict[str, object]:
    seq = naive = final = 0
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        first, nv, fx = _simulate(rng, r, n, 0.10, 0.10, tuning_n=n / 4, burn_in=burn_in)
        seq += int((first >= 0).sum())
        naive += int(nv.sum())
        final += int(fx.sum())
    return {
        "experiments": reps,
        "units_per_experiment": n,
        "looks_per_experiment": n,
        "burn_in_units_per_arm": burn_in,
        "msprt_false_positive_rate": seq / reps,
        "msprt_fpr_95ci": _cp(seq, reps),
        "naive_repeated_z_false_positive_rate": naive / reps,
        "naive_fpr_95ci": _cp(naive, reps),
        "single_fixed_look_false_positive_rate": final / reps,
    }


def power(rng: np.random.Generator, reps: int, chunk: int, burn_in: int) -> dict[str, object]:
    p_a, p_b = 0.10, 0.12
    n80 = stats.sample_size_two_proportions(p_a, p_b, ALPHA, 0.8)
    cap = 8 * n80  # total units (both arms): up to 4x the fixed per-arm size per arm
    stops: list[np.ndarray] = []
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        first, _, _ = _simulate(rng, r, cap, p_a, p_b, tuning_n=n80, burn_in=burn_in)
        stops.append(first)
    first = np.concatenate(stops)
    decided = first >= 0
    seq_power = float(decided.mean())
    units = np.where(decided, first + 1, cap).astype(float)  # censored at the cap
    n_same = stats.sample_size_two_proportions(p_a, p_b, ALPHA, min(seq_power, 0.999))
    return {
        "experiments": reps,
        "p_control": p_a,
        "p_treatment": p_b,
        "cap_units_total": cap,
        "msprt_power_within_cap": round(seq_power, 4),
        "msprt_median_units_to_decision_total": float(np.median(units)),
        "msprt_mean_units_to_decision_total": round(float(units.mean()), 1),
        "fixed_horizon_units_total_at_same_power": 2 * n_same,
        "ratio_median_to_fixed_same_power": round(float(np.median(units)) / (2 * n_same), 3),
        "fixed_horizon_units_total_at_80pct_power": 2 * n80,
        "msprt_share_decided_by_fixed_80pct_size": round(
            float((decided & (first + 1 <= 2 * n80)).mean()), 4
        ),
    }


def speed(rng: np.random.Generator) -> dict[str, object]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    n_arm = 5_000_000
    spec = ExperimentSpec(
        experiment_id="big",
        model="m",
        control="v1",
        treatments=["v2"],
        split={"v1": 0.5, "v2": 0.5},
        salt="big",
        primary_metric="conversion",
        guardrails=[
            GuardrailMetric(metric="latency_ms", kind="continuous", higher_is_better=False)
        ],
        status="running",
        started_at=t0,
        updated_at=t0,
    )
    ya = rng.random(n_arm) < 0.100
    yb = rng.random(n_arm) < 0.101
    la, lb = rng.gamma(2.0, 20.0, n_arm), rng.gamma(2.0, 20.0, n_arm)
    part = ExperimentPartial(units={"v1": n_arm, "v2": n_arm})
    part.metrics["conversion"] = {
        "v1": [float(ya.sum())] * 3 + [0.0] * (ACC_SIZE - 3),
        "v2": [float(yb.sum())] * 3 + [0.0] * (ACC_SIZE - 3),
    }
    part.metrics["latency_ms"] = {
        a: [
            float(x.sum()),
            float((x * x).sum()),
            float(x.max()),
            0.0,
            0.0,
            0.0,
            0.0,
            float(x.size),
            float(x.mean()),
            float(((x - x.mean()) ** 2).sum()),
        ]
        for a, x in (("v1", la), ("v2", lb))
    }
    minutes = 7 * 24 * 60  # a week of one-minute buckets
    per = n_arm // minutes
    part.buckets = {
        int((t0 + timedelta(minutes=m)).timestamp()): {"v1": per, "v2": per} for m in range(minutes)
    }
    history = [SplitEpoch(start=t0.timestamp() - 3600, weights={"v1": 0.5, "v2": 0.5})]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        analysis, _ = analyze(spec, part, history=history, running_p={}, analysis_id="a", now=t0)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    raw_a, raw_b = ya.astype(float), yb.astype(float)
    sps.ttest_ind(raw_b, raw_a, equal_var=False)
    baseline = time.perf_counter() - start
    return {
        "exposures": 2 * n_arm,
        "srm_buckets": minutes,
        "analysis_seconds_median": round(float(np.median(times)), 4),
        "analysis_seconds_max": round(max(times), 4),
        "baseline_raw_welch_on_10m_values_seconds": round(baseline, 4),
        "ratio_baseline_to_analysis": round(baseline / float(np.median(times)), 1),
        "recommendation": analysis.recommendation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--aa-experiments", type=int, default=10_000)
    parser.add_argument("--aa-units", type=int, default=10_000)
    parser.add_argument("--power-experiments", type=int, default=2_000)
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--burn-in", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 A/A and 200 power runs")
    args = parser.parse_args()
    if args.quick:
        args.aa_experiments, args.power_experiments = 1_000, 200
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    out: dict[str, object] = {"benchmark": "experiments", "seed": args.seed, "alpha": ALPHA}
    out["aa"] = aa(rng, args.aa_experiments, args.aa_units, args.chunk, args.burn_in)
    out["power"] = power(rng, args.power_experiments, args.chunk // 4, args.burn_in)
    out["speed"] = speed(rng)
    out["wall_seconds"] = round(time.perf_counter() - t, 1)
    out["figures"] = figures(out)
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


def figures(out: dict[str, Any]) -> dict[str, Any]:
    """The headline figures in the shape ``benchmarks/summary.py`` reads."""
    aa, sp = out["aa"], out["speed"]
    fpr, ci = aa["msprt_false_positive_rate"], aa["msprt_fpr_95ci"]
    return {
        "msprt_aa_false_positive_rate": {
            "label": "A/A false positive rate, always-valid test looked at after every unit",
            "value": fpr,
            "unit": "share",
            "baseline": "naive repeated z-test, same experiments",
            "baseline_value": aa["naive_repeated_z_false_positive_rate"],
            "ratio": None,
            "target": ALPHA,
            "higher_is_better": False,
            # the 95% interval must reach alpha (not significantly above it)
            "pass": ci[0] <= ALPHA,
        },
        "analysis_speedup_10m_exposures": {
            "label": "analysis of 10M exposures vs raw Welch test on the values",
            "value": sp["ratio_baseline_to_analysis"],
            "unit": "x",
            "baseline": "scipy Welch t-test on 10M raw values, seconds",
            "baseline_value": sp["baseline_raw_welch_on_10m_values_seconds"],
            "ratio": sp["ratio_baseline_to_analysis"],
            "target": None,
            "higher_is_better": True,
            "pass": None,
        },
    }


if __name__ == "__main__":
    main()
