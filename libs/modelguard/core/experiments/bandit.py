"""Thompson-sampling allocation with a minimum share per arm and a bounded update rate.

Target weight of an arm = ``min_share + (1 - k * min_share) * P(arm is best)``, the
probability estimated from ``draws`` posterior samples (Beta for binary metrics, normal
for continuous ones). A new allocation is produced at most once per
``min_update_interval_seconds``, and it moves toward the target by at most ``max_step``
on any arm (a convex step, so weights stay a distribution above the floor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from modelguard.contracts.experiments import BanditConfig, ExperimentSpec
from modelguard.core.experiments import stats
from modelguard.core.experiments.analysis import arm_moments
from modelguard.core.experiments.bookkeeping import ExperimentPartial


@dataclass(frozen=True, slots=True)
class BanditUpdate:
    weights: dict[str, float]
    target: dict[str, float]
    prob_best: dict[str, float]


def probability_best(
    spec: ExperimentSpec, partial: ExperimentPartial, rng: np.random.Generator, draws: int
) -> dict[str, float]:
    arms = spec.arms
    cols = []
    for arm in arms:
        m = arm_moments(partial, spec.primary_metric, arm, spec.primary_kind)
        if spec.primary_kind == "binary":
            cols.append(rng.beta(1.0 + m.total, 1.0 + m.n - m.total, draws))
        else:
            mean = m.mean if m.n >= 1 else 0.0
            sd = math.sqrt(m.var_of_mean) if m.n >= 2 else 1e6
            cols.append(rng.normal(mean, sd if sd > 0 else 1e-12, draws))
    best = stats.chance_to_be_best(np.stack(cols, axis=1), higher_is_better=spec.higher_is_better)
    return {arm: float(p) for arm, p in zip(arms, best, strict=True)}


def target_weights(prob_best: Mapping[str, float], cfg: BanditConfig) -> dict[str, float]:
    k = len(prob_best)
    free = 1.0 - k * cfg.min_share
    return {a: cfg.min_share + free * p for a, p in prob_best.items()}


def step_toward(
    current: Mapping[str, float], target: Mapping[str, float], max_step: float
) -> dict[str, float]:
    """Move from ``current`` toward ``target`` with no arm changing by more than
    ``max_step``; arms missing from ``current`` start at 0."""
    gap = max(abs(target[a] - current.get(a, 0.0)) for a in target)
    lam = 1.0 if gap <= max_step else max_step / gap
    out = {a: current.get(a, 0.0) + lam * (target[a] - current.get(a, 0.0)) for a in target}
    total = sum(out.values())
    return {a: w / total for a, w in out.items()}


def bandit_update(
    spec: ExperimentSpec,
    partial: ExperimentPartial,
    *,
    current: Mapping[str, float],
    last_update: datetime | None,
    now: datetime,
    rng: np.random.Generator,
) -> BanditUpdate | None:
    """The next allocation, or None when the last update is too recent (or no bandit)."""
    cfg = spec.bandit
    if spec.allocation != "bandit" or cfg is None:
        return None
    if (
        last_update is not None
        and (now - last_update).total_seconds() < cfg.min_update_interval_seconds
    ):
        return None
    prob = probability_best(spec, partial, rng, cfg.draws)
    target = target_weights(prob, cfg)
    weights = step_toward(current or spec.split, target, cfg.max_step)
    return BanditUpdate(weights=weights, target=target, prob_best=prob)


def ramp_split(spec: ExperimentSpec, now: datetime) -> dict[str, float]:
    """The split in force at ``now`` given the ramp schedule (the plain split without
    one): treatments share the ramp step's share in the ratio of ``split``."""
    if not spec.ramp or spec.started_at is None:
        return dict(spec.split)
    elapsed = (now - spec.started_at).total_seconds()
    steps = [s for s in spec.ramp if s.after_seconds <= elapsed]
    share = 0.0 if not steps else steps[-1].treatment_share
    t_total = sum(spec.split[a] for a in spec.treatments)
    out = {spec.control: 1.0 - share}
    for a in spec.treatments:
        out[a] = share * (spec.split[a] / t_total if t_total > 0 else 1.0 / len(spec.treatments))
    return out
