"""Controller inputs for tests: ten-second metric windows and drift signals numbered
``i`` from ``T0`` on ``fraud``, and the instant just after window ``i`` closed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from modelguard.contracts.common import Severity, WindowSpec
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def metric_window(
    i: int, version: str, *, metrics: Mapping[str, float], n: int = 100, errors: int = 0
) -> MetricWindowClosed:
    """Window ``i`` of ``version``: ``n`` predictions, all labelled, ``errors`` failed."""
    return MetricWindowClosed(
        event_id=f"w-{version}-{i}",
        model="fraud",
        version=version,
        window=WindowSpec(kind="tumbling", length_seconds=10),
        window_start=T0 + timedelta(seconds=10 * i),
        window_end=T0 + timedelta(seconds=10 * (i + 1)),
        n_predictions=n,
        n_labelled=n,
        n_errors=errors,
        metrics=dict(metrics),
        emitted_at=T0 + timedelta(seconds=10 * (i + 1)),
    )


def drift_signal(
    i: int,
    severity: Severity,
    *,
    detected: bool,
    statistic: float,
    n_current: int,
    version: str | None = "v1",
    kind: str = "data",
) -> DriftSignal:
    """A PSI signal on ``amount`` over window ``i`` (1000 reference observations)."""
    return DriftSignal(
        event_id=f"d-{i}",
        model="fraud",
        version=version,
        kind=kind,  # type: ignore[arg-type]
        feature="amount",
        test="psi",
        statistic=statistic,
        drift_detected=detected,
        severity=severity,
        window_start=T0 + timedelta(seconds=10 * i),
        window_end=T0 + timedelta(seconds=10 * (i + 1)),
        n_reference=1000,
        n_current=n_current,
    )


def after(i: int) -> datetime:
    """One second after window ``i`` closed."""
    return T0 + timedelta(seconds=10 * (i + 1) + 1)
