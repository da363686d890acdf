"""Controller inputs for tests: metric windows and drift signals on ``fraud`` numbered
``i`` from ``t0`` (``T0`` unless given; ten-second windows unless ``length`` says
otherwise), and the instant just after window ``i`` closed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from modelguard.contracts.common import Severity, WindowSpec
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
#: The guardrails of the controller tests' ``fraud`` policy (YAML, indented for a model
#: block): two breached error-rate windows, a 2% accuracy drop, optional critical drift.
GUARDRAILS_YAML = """\
    guardrails:
      - {name: errors, kind: error_rate, threshold: 0.01, min_samples: 50, consecutive: 2}
      - {name: accuracy, kind: accuracy_drop, max_drop_percent: 2, min_samples: 50}
      - {name: drift, kind: data_drift, min_severity: critical, required: false}
"""


def metric_window(
    i: int,
    version: str,
    *,
    metrics: Mapping[str, float],
    n: int = 100,
    errors: int = 0,
    t0: datetime = T0,
    length: int = 10,
    tag: str = "",
) -> MetricWindowClosed:
    """Window ``i`` of ``version``: ``n`` predictions, all labelled, ``errors`` failed."""
    return MetricWindowClosed(
        event_id=f"w{tag}-{version}-{i}",
        model="fraud",
        version=version,
        window=WindowSpec(kind="tumbling", length_seconds=length),
        window_start=t0 + timedelta(seconds=length * i),
        window_end=t0 + timedelta(seconds=length * (i + 1)),
        n_predictions=n,
        n_labelled=n,
        n_errors=errors,
        metrics=dict(metrics),
        emitted_at=t0 + timedelta(seconds=length * (i + 1)),
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
    t0: datetime = T0,
    length: int = 10,
    event_id: str | None = None,
) -> DriftSignal:
    """A PSI signal on ``amount`` over window ``i`` (1000 reference observations)."""
    return DriftSignal(
        event_id=f"d-{i}" if event_id is None else event_id,
        model="fraud",
        version=version,
        kind=kind,  # type: ignore[arg-type]
        feature="amount",
        test="psi",
        statistic=statistic,
        drift_detected=detected,
        severity=severity,
        window_start=t0 + timedelta(seconds=length * i),
        window_end=t0 + timedelta(seconds=length * (i + 1)),
        n_reference=1000,
        n_current=n_current,
    )


def after(i: int) -> datetime:
    """One second after window ``i`` closed."""
    return T0 + timedelta(seconds=10 * (i + 1) + 1)
