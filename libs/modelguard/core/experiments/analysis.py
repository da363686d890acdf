"""From merged bookkeeping to an :class:`ExperimentAnalysis`: the controller's evidence.

Decision rule (ADR 0004):
- the sample-ratio-mismatch check (chi-square of all units against the split in force
  when they arrived, a band around split changes) freezes every conclusion while
  p < ``SRM_ALPHA``;
- a treatment is *better* / *worse* when both arms have ``min_sample_size`` units, its
  Holm-adjusted always-valid p-value (mSPRT; only looks after the burn-in count) is at
  most ``alpha`` and the running confidence sequence lies above / below 0 (the
  direction of the significant looks, never of the current estimate);
- a guardrail is breached when the treatment's always-valid test on that metric rejects
  in the bad direction and the relative degradation exceeds its tolerance;
- promote the best *better* arm without a breach; else roll back when some treatment is
  worse or breached; else continue.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelguard.contracts.common import JsonScalar
from modelguard.contracts.experiments import (
    ArmAnalysis,
    ExperimentAnalysis,
    ExperimentSpec,
    GuardrailResult,
    MetricKind,
)
from modelguard.core.experiments import stats
from modelguard.core.experiments.bookkeeping import (
    ACC_SIZE,
    BUCKET_SECONDS,
    M2Y,
    MY,
    NX,
    NY,
    SMAX,
    SX,
    SXX,
    SXY,
    SY,
    SYY,
    ExperimentPartial,
    upgrade_accumulator,
)

SRM_ALPHA = 0.001
#: Buckets within this many seconds after a split change are left out of the SRM check
#: (routing clients pick up new weights with a small delay).
SPLIT_CHANGE_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SplitEpoch:
    """Weights in force from ``start`` (epoch seconds) until the next epoch."""

    start: float
    weights: Mapping[str, float]


def analysis_task(experiment_id: str, partitions: int) -> int:
    """The task (partition) whose owner analyses ``experiment_id``: a stable hash, so
    experiments spread over the processor's workers and none depends on partition 0.

    >>> analysis_task("exp1", 1)
    0
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    digest = hashlib.blake2b(experiment_id.encode(), digest_size=8, person=b"mg-analyst").digest()
    return int.from_bytes(digest, "big") % partitions


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def srm_check(
    partial: ExperimentPartial, arms: Sequence[str], history: Sequence[SplitEpoch]
) -> tuple[float | None, int]:
    """SRM p-value of all units per arm against the split in force when they arrived;
    also the number of units used.

    Every bucket counts. A bucket's expected share of an arm is known exactly when one
    split was in force from ``SPLIT_CHANGE_GRACE_SECONDS`` before the bucket to its end;
    otherwise (a split change in or just before the bucket, when routing clients may
    still use the old split) it lies between the smallest and largest share of the
    splits in force in that window. The expected counts are summed over buckets and the
    chi-square is minimised over that band (:func:`stats.srm_p_value_banded`), so
    bandit experiments, whose split changes every minute, are checked too."""
    if not history:
        return None, 0
    epochs = sorted(history, key=lambda e: e.start)
    starts = [e.start for e in epochs]
    shares: list[dict[str, float] | None] = []
    for e in epochs:
        wsum = sum(e.weights.get(a, 0.0) for a in arms)
        shares.append({a: e.weights.get(a, 0.0) / wsum for a in arms} if wsum > 0 else None)
    observed = dict.fromkeys(arms, 0.0)
    low = dict.fromkeys(arms, 0.0)
    high = dict.fromkeys(arms, 0.0)
    used = 0
    for bucket, counts in partial.buckets.items():
        lo, hi = bucket - SPLIT_CHANGE_GRACE_SECONDS, bucket + BUCKET_SECONDS
        first = max(bisect.bisect_right(starts, lo) - 1, 0)
        last = bisect.bisect_left(starts, hi) - 1
        if last < 0:
            continue  # before the experiment's first split
        total = sum(counts.get(a, 0) for a in arms)
        if total == 0:
            continue
        window = [x for x in shares[first : last + 1] if x is not None]
        if not window:
            continue
        used += total
        for a in arms:
            observed[a] += counts.get(a, 0)
            if len(window) == 1:
                low[a] += total * window[0][a]
                high[a] += total * window[0][a]
            else:
                low[a] += total * min(x[a] for x in window)
                high[a] += total * max(x[a] for x in window)
    if used == 0:
        return None, 0
    return (
        stats.srm_p_value_banded(
            [observed[a] for a in arms], [low[a] for a in arms], [high[a] for a in arms]
        ),
        used,
    )


def arm_moments(
    partial: ExperimentPartial, metric: str, arm: str, kind: MetricKind
) -> stats.Moments:
    n = float(partial.units.get(arm, 0))
    s = partial.metrics.get(metric, {}).get(arm, [0.0] * ACC_SIZE)
    if kind == "binary":
        return stats.Moments.binary(min(s[SMAX], n), n)
    acc = upgrade_accumulator(s, int(n))
    with_value = stats.Moments(acc[NY], acc[MY], acc[M2Y])
    # units without a value of this metric count as zeros
    return with_value + stats.Moments(max(0.0, n - acc[NY]), 0.0, 0.0)


def _cov_moments(
    partial: ExperimentPartial, metric: str, arms: Sequence[str]
) -> list[stats.CovMoments] | None:
    """Covariate sums per arm when every unit of every arm has a pre-period value."""
    out = []
    for arm in arms:
        n = float(partial.units.get(arm, 0))
        s = partial.metrics.get(metric, {}).get(arm)
        if s is None or n < 2 or s[NX] != n:
            return None
        out.append(stats.CovMoments(n, s[SY], s[SYY], s[SX], s[SXX], s[SXY]))
    return out


@dataclass(frozen=True, slots=True)
class Design:
    """The always-valid test's tuning for a spec: mixing variance per unit of variance
    and, when the spec plans a minimum detectable effect, the power to detect it by the
    horizon (sequential, and fixed-horizon at the same n for comparison)."""

    rho2: float
    horizon: int
    effect: float | None
    expected_power: float | None
    fixed_horizon_power: float | None


def design(spec: ExperimentSpec) -> Design:
    """Tightest at the horizon without a planned effect (the GrowthBook-style default);
    with one, the mixture maximising the power for that effect by the horizon."""
    horizon = spec.tuning_units
    effect = spec.standardized_mde
    if effect is None or horizon <= spec.min_sample_size:
        power = None if effect is None else 0.0
        fixed = None if effect is None else stats.fixed_horizon_power(effect, horizon, spec.alpha)
        return Design(stats.mixture_rho2(horizon, spec.alpha), horizon, effect, power, fixed)
    burn_in = float(spec.min_sample_size)
    rho2 = stats.tuned_rho2(effect, float(horizon), alpha=spec.alpha, burn_in=burn_in)
    power = stats.sequential_power(
        effect, float(horizon), alpha=spec.alpha, rho2=rho2, burn_in=burn_in
    )
    return Design(
        rho2, horizon, effect, power, stats.fixed_horizon_power(effect, horizon, spec.alpha)
    )


def _state_keys(metric: str, arm: str) -> tuple[str, str, str]:
    """Keys of the running always-valid p and confidence sequence in the running map."""
    key = f"{metric}:{arm}"
    return key, f"{key}:cs_low", f"{key}:cs_high"


def _previous(running: Mapping[str, float], metric: str, arm: str) -> stats.SequentialState:
    kp, klo, khi = _state_keys(metric, arm)
    return stats.SequentialState(
        running.get(kp, 1.0), running.get(klo, -math.inf), running.get(khi, math.inf)
    )


def _store(out: dict[str, float], metric: str, arm: str, seq: stats.Sequential) -> None:
    kp, klo, khi = _state_keys(metric, arm)
    out[kp], out[klo], out[khi] = seq.always_valid_p, seq.cs_low, seq.cs_high


@dataclass(frozen=True, slots=True)
class _Tested:
    comparison: stats.Comparison | None
    sequential: stats.Sequential
    bayes: stats.Bayes | None
    cuped: bool
    mean: float


def _test(
    spec: ExperimentSpec,
    partial: ExperimentPartial,
    metric: str,
    kind: MetricKind,
    arm: str,
    higher_is_better: bool,
    previous: stats.SequentialState,
    rho2: float,
) -> _Tested:
    a = arm_moments(partial, metric, spec.control, kind)
    b = arm_moments(partial, metric, arm, kind)
    covs = _cov_moments(partial, metric, [spec.control, arm])
    cuped = covs is not None
    ta, tb = a, b
    if covs is not None:
        adjusted, _ = stats.cuped_adjust(covs)
        ta, tb = adjusted
    comparison: stats.Comparison | None = None
    if a.n >= 2 and b.n >= 2:
        if kind == "binary" and not cuped:
            comparison = stats.two_proportion_ztest(a.total, a.n, b.total, b.n, spec.alpha)
        elif ta.var + tb.var > 0:
            comparison = stats.welch_ttest(ta, tb, spec.alpha)
    seq = stats.sequential_test(
        ta,
        tb,
        alpha=spec.alpha,
        rho2=rho2,
        previous=previous,
        burn_in=spec.min_sample_size,
        binary=kind == "binary" and not cuped,
    )
    bayes: stats.Bayes | None = None
    if a.n >= 1 and b.n >= 1:
        if kind == "binary":
            bayes = stats.beta_binomial_bayes(
                a.total, a.n, b.total, b.n, higher_is_better=higher_is_better
            )
        elif a.n >= 2 and b.n >= 2:
            bayes = stats.normal_bayes(ta, tb, higher_is_better=higher_is_better)
    return _Tested(comparison, seq, bayes, cuped, b.mean)


def analyze(
    spec: ExperimentSpec,
    partial: ExperimentPartial,
    *,
    history: Sequence[SplitEpoch],
    running_p: Mapping[str, float],
    analysis_id: str,
    now: datetime,
) -> tuple[ExperimentAnalysis, dict[str, float]]:
    """Analyse the merged bookkeeping of ``spec``. ``running_p`` holds the sequential
    state of earlier looks (always-valid p under ``metric:arm``, the running confidence
    sequence under ``metric:arm:cs_low`` / ``:cs_high``); the updated map is returned."""
    arms = spec.arms
    plan = design(spec)
    new_p: dict[str, float] = dict(running_p)
    srm_p, _ = srm_check(partial, arms, history)
    srm = srm_p is not None and srm_p < SRM_ALPHA
    n_control = partial.units.get(spec.control, 0)
    enough = {
        arm: min(n_control, partial.units.get(arm, 0)) >= spec.min_sample_size
        for arm in spec.treatments
    }

    tested: dict[str, _Tested] = {}
    for arm in spec.treatments:
        t = _test(
            spec,
            partial,
            spec.primary_metric,
            spec.primary_kind,
            arm,
            spec.higher_is_better,
            _previous(running_p, spec.primary_metric, arm),
            plan.rho2,
        )
        tested[arm] = t
        _store(new_p, spec.primary_metric, arm, t.sequential)
    holm_p = dict(
        zip(
            spec.treatments,
            stats.holm([tested[a].sequential.always_valid_p for a in spec.treatments]),
            strict=True,
        )
    )

    guard_results: list[GuardrailResult] = []
    breached: set[str] = set()
    for g in spec.guardrails:
        for arm in spec.treatments:
            t = _test(
                spec,
                partial,
                g.metric,
                g.kind,
                arm,
                g.higher_is_better,
                _previous(running_p, g.metric, arm),
                plan.rho2,
            )
            _store(new_p, g.metric, arm, t.sequential)
            rel = t.comparison.relative_lift if t.comparison else None
            rel = _finite(rel)
            # the bad direction must be the one of the looks that reached significance
            seq_dir = t.sequential.direction(spec.alpha)
            bad_direction = (
                rel is not None
                and (rel < 0 if g.higher_is_better else rel > 0)
                and seq_dir == (-1 if g.higher_is_better else 1)
            )
            hit = bool(
                enough[arm]
                and bad_direction
                and rel is not None
                and abs(rel) > g.max_relative_degradation
                and t.sequential.always_valid_p <= spec.alpha
            )
            if hit:
                breached.add(arm)
            guard_results.append(
                GuardrailResult(
                    metric=g.metric,
                    arm=arm,
                    relative_change=rel,
                    always_valid_p=t.sequential.always_valid_p,
                    breached=hit,
                )
            )

    control_mean = arm_moments(partial, spec.primary_metric, spec.control, spec.primary_kind).mean
    arm_rows = [
        ArmAnalysis(
            arm=spec.control,
            is_control=True,
            units=n_control,
            mean=_finite(control_mean),
            verdict="control",
        )
    ]
    better: list[str] = []
    worse: list[str] = []
    for arm in spec.treatments:
        t = tested[arm]
        c = t.comparison
        sign = 1.0 if spec.higher_is_better else -1.0
        verdict: Literal["better", "worse", "inconclusive"] = "inconclusive"
        # the direction is the running confidence sequence's (the significant looks'),
        # never the current estimate's
        direction = t.sequential.direction(spec.alpha)
        if enough[arm] and holm_p[arm] <= spec.alpha and direction != 0:
            verdict = "better" if sign * direction > 0 else "worse"
        if verdict == "better":
            better.append(arm)
        elif verdict == "worse":
            worse.append(arm)
        arm_rows.append(
            ArmAnalysis(
                arm=arm,
                is_control=False,
                units=partial.units.get(arm, 0),
                mean=_finite(t.mean),
                difference=_finite(c.difference) if c else None,
                ci_low=_finite(c.ci_low) if c else None,
                ci_high=_finite(c.ci_high) if c else None,
                relative_lift=_finite(c.relative_lift) if c else None,
                relative_ci_low=_finite(c.relative_ci_low) if c else None,
                relative_ci_high=_finite(c.relative_ci_high) if c else None,
                p_value=_finite(c.p_value) if c else None,
                always_valid_p=t.sequential.always_valid_p,
                holm_p=holm_p[arm],
                cs_low=_finite(t.sequential.cs_low),
                cs_high=_finite(t.sequential.cs_high),
                chance_to_beat_control=t.bayes.chance_to_beat_control if t.bayes else None,
                expected_loss=t.bayes.expected_loss if t.bayes else None,
                cuped=t.cuped,
                verdict=verdict,
            )
        )

    winners = [a for a in better if a not in breached]
    losers = sorted(set(worse) | breached)
    winner: str | None = None
    spec_sign = 1.0 if spec.higher_is_better else -1.0
    recommendation: Literal["promote", "rollback", "continue"]
    if srm:
        recommendation = "continue"
        reason = f"sample ratio mismatch (p={srm_p:.2g} < {SRM_ALPHA}): conclusions frozen"
        losers = []
    elif winners:
        winner = max(winners, key=lambda a: spec_sign * (tested[a].mean or 0.0))
        recommendation = "promote"
        reason = (
            f"{winner} beats {spec.control} on {spec.primary_metric} "
            f"(always-valid p={holm_p[winner]:.3g} after Holm, alpha={spec.alpha})"
        )
        losers = [a for a in losers if a != winner]
    elif losers:
        recommendation = "rollback"
        reason = f"{', '.join(losers)} worse than {spec.control} or breaching a guardrail"
    else:
        recommendation = "continue"
        short = [a for a in spec.treatments if not enough[a]]
        reason = (
            f"minimum sample size {spec.min_sample_size} not reached for {', '.join(short)}"
            if short
            else "no significant difference yet"
        )

    evidence: list[dict[str, JsonScalar]] = [
        {
            "arm": r.arm,
            "units": r.units,
            "mean": r.mean,
            "always_valid_p": r.always_valid_p,
            "holm_p": r.holm_p,
            "chance_to_beat_control": r.chance_to_beat_control,
        }
        for r in arm_rows
    ]
    evidence.append({"check": "srm", "p_value": srm_p, "detected": srm})
    analysis = ExperimentAnalysis(
        analysis_id=analysis_id,
        experiment_id=spec.experiment_id,
        model=spec.model,
        spec_revision=spec.revision,
        primary_metric=spec.primary_metric,
        recommendation=recommendation,
        winner=winner,
        losers=losers,
        reason=reason,
        srm_p_value=srm_p,
        srm_detected=srm,
        frozen=srm,
        total_units=sum(partial.units.get(a, 0) for a in arms),
        expected_power=plan.expected_power,
        fixed_horizon_power=plan.fixed_horizon_power,
        arms=arm_rows,
        guardrails=guard_results,
        evidence=evidence,
        analyzed_at=now,
    )
    return analysis, new_p
