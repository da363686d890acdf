"""Experiments in tests: a running two-arm spec (each test overrides what it is about),
binary partial aggregates, and one look of the analysis at them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelguard.contracts.experiments import (
    ExperimentAnalysis,
    ExperimentSpec,
    ExposureLogged,
    OutcomeObserved,
)
from modelguard.core.experiments import bookkeeping as bk
from modelguard.core.experiments.analysis import SplitEpoch, analyze

T0 = datetime(2026, 11, 1, tzinfo=UTC)
#: 50/50 since an hour before ``T0``
HIST = [SplitEpoch(start=T0.timestamp() - 3600, weights={"v1": 0.5, "v2": 0.5})]


def experiment_spec(**kw: object) -> ExperimentSpec:
    """``e1`` on ``fraud``: control v1, treatment v2 at 50/50, conversion, 200 units."""
    base: dict[str, object] = dict(
        experiment_id="e1",
        model="fraud",
        control="v1",
        treatments=["v2"],
        split={"v1": 0.5, "v2": 0.5},
        salt="e1",
        primary_metric="conversion",
        min_sample_size=200,
        status="running",
        started_at=T0,
        updated_at=T0,
    )
    base.update(kw)
    return ExperimentSpec.model_validate(base)


def binary_partial(
    n: tuple[int, int], conv: tuple[int, int], t0: datetime = T0
) -> bk.ExperimentPartial:
    """``n`` units of v1 and v2 of which ``conv`` converted, all in the bucket of ``t0``."""
    p = bk.ExperimentPartial(units={"v1": n[0], "v2": n[1]})
    p.metrics["conversion"] = {
        "v1": [conv[0], conv[0], conv[0], 0, 0, 0, 0],
        "v2": [conv[1], conv[1], conv[1], 0, 0, 0, 0],
    }
    p.buckets = {int(t0.timestamp()): {"v1": n[0], "v2": n[1]}}
    return p


def analyze_binary(
    s: ExperimentSpec,
    n: tuple[int, int],
    conv: tuple[int, int],
    *,
    analysis_id: str = "a1",
    running_p: dict[str, float] | None = None,
) -> tuple[ExperimentAnalysis, dict[str, float]]:
    """One look of :func:`analyze` at :func:`binary_partial` ``(n, conv)`` at ``T0``."""
    running = {} if running_p is None else running_p
    return analyze(
        s, binary_partial(n, conv), history=HIST, running_p=running, analysis_id=analysis_id, now=T0
    )


def exposure(
    unit: str, arm: str, i: int = 0, experiment: str = "e1", *, event_id: str | None = None
) -> ExposureLogged:
    """Unit ``unit`` exposed to ``arm`` of ``experiment`` (model ``fraud``) ``i`` seconds
    after ``T0``; event id ``x<unit><i>`` unless given."""
    return ExposureLogged(
        event_id=event_id or f"x{unit}{i}",
        experiment_id=experiment,
        unit_id=unit,
        arm=arm,
        model="fraud",
        event_time=T0 + timedelta(seconds=i),
    )


def outcome(
    unit: str,
    value: float,
    eid: str,
    experiment: str | None = "e1",
    pre: float | None = None,
    metric: str = "conversion",
) -> OutcomeObserved:
    """An outcome ``value`` of ``metric`` for ``unit`` at ``T0`` (``pre``: its pre-period value)."""
    return OutcomeObserved(
        event_id=eid,
        experiment_id=experiment,
        unit_id=unit,
        metric=metric,
        value=value,
        pre_period_value=pre,
        event_time=T0,
    )
