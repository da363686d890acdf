"""A running two-arm experiment spec for tests; each test overrides what it is about."""

from __future__ import annotations

from datetime import UTC, datetime

from modelguard.contracts.experiments import ExperimentSpec

T0 = datetime(2026, 11, 1, tzinfo=UTC)


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
