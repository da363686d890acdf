"""Drift signals of a monitor: one :class:`DriftSignal` per window test result, per
sequential alarm and per concept alarm, with a deterministic id (the same window or
alarm of the same stream gets the same id after a restart, whatever the batching)."""

from __future__ import annotations

import math

from modelguard.contracts.common import Severity
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.ids import stable_id
from modelguard.core.drift import severity as sev
from modelguard.core.drift.concept import ConceptAlarm
from modelguard.core.drift.detector import Alarm
from modelguard.core.drift.evaluation import TestResult
from modelguard.core.drift.events import Observation
from modelguard.core.drift.sequential import NumericDriftDetector, SlidingWindowChi2
from modelguard.core.drift.state import ModelMonitor


def event_id(*parts: object) -> str:
    """A drift signal's deterministic id (the one scheme: ``contracts.ids.stable_id``)."""
    return stable_id("ds", *parts)


def origin(o: Observation) -> str:
    """What identifies a monitor's stream: its first prediction (id, else time)."""
    return o.prediction_id if o.prediction_id is not None else o.event_time.isoformat()


def finite(x: float) -> float:
    return x if math.isfinite(x) else 1e300


def signal(
    mon: ModelMonitor,
    *,
    kind: str,
    feature: str | None,
    test: str,
    statistic: float,
    p_value: float | None,
    p_adjusted: float | None = None,
    effect: float | None,
    threshold: float | None,
    detected: bool,
    severity: Severity,
    n_reference: int,
    n_current: int,
    tag: object,
) -> DriftSignal:
    ref = mon.reference
    start = mon.window_start or mon.window_end
    end = mon.window_end or start
    assert start is not None and end is not None
    return DriftSignal(
        # deterministic: the same window / alarm of the same stream gets the same id
        # after a restart (whatever the batching or the window's time span)
        event_id=event_id(
            ref.model, mon.version, ref.reference_id, mon.origin, kind, feature, test, tag
        ),
        model=ref.model,
        version=mon.version,
        kind=kind,
        feature=feature,
        test=test,
        statistic=finite(statistic),
        p_value=None if p_value is None else min(1.0, max(0.0, p_value)),
        p_value_adjusted=p_adjusted,
        effect_size=None if effect is None else finite(effect),
        threshold=threshold,
        drift_detected=detected,
        severity=severity,
        window_start=start,
        window_end=end,
        n_reference=n_reference,
        n_current=n_current,
        reference_version=ref.reference_id,
    )


def numeric_alarm(
    mon: ModelMonitor,
    name: str,
    det: NumericDriftDetector,
    alarm: Alarm,
    n: int,
    position: int,
) -> DriftSignal:
    """The signal of a numeric feature's sequential alarm, graded by the location /
    scale shift over the KS window (and the KS distance for a KS alarm)."""
    zmean, zsd = det.recent_shift()
    severity = max(
        sev.from_effect("mean_shift", zmean),
        sev.from_effect("log_scale", math.log(max(zsd, 1e-9))),
    )
    if alarm.test == "ks_window":
        severity = max(severity, sev.from_effect("ks", alarm.statistic))
    return _alarm_signal(mon, name, alarm, zmean, severity, det.reference.n, n, position)


def categorical_alarm(
    mon: ModelMonitor, name: str, chi: SlidingWindowChi2, alarm: Alarm, n: int
) -> DriftSignal:
    """The signal of a categorical feature's sequential alarm, graded by PSI."""
    # practical size: the PSI of the alarm window against the reference shares (the
    # window tests' scale); chi-square / window understated it (0.06 at threshold)
    psi = chi.window_psi(alarm.histogram)
    return _alarm_signal(
        mon, name, alarm, psi, sev.from_effect("psi", psi), chi.reference.n, n, alarm.position
    )


def _alarm_signal(
    mon: ModelMonitor,
    name: str,
    alarm: Alarm,
    effect: float,
    severity: Severity,
    n_reference: int,
    n: int,
    position: int,
) -> DriftSignal:
    return signal(
        mon,
        kind="data",
        feature=name,
        test=alarm.test,
        statistic=alarm.statistic,
        p_value=None,
        effect=effect,
        threshold=alarm.threshold,
        detected=severity >= Severity.LOW,
        severity=severity,
        n_reference=n_reference,
        n_current=n,
        tag=f"seq{alarm.test}-{position}",
    )


def result_signal(mon: ModelMonitor, r: TestResult) -> DriftSignal:
    """The signal of one window test result."""
    return signal(
        mon,
        kind=r.kind,
        feature=r.feature,
        test=r.test,
        statistic=r.statistic,
        p_value=r.p_value,
        p_adjusted=r.p_adjusted,
        effect=r.effect_size,
        threshold=r.threshold,
        detected=r.drift_detected,
        severity=r.severity,
        n_reference=r.n_reference,
        n_current=r.n_current,
        tag=f"win{mon.window_index}",
    )


def concept_alarm(mon: ModelMonitor, alarm: ConceptAlarm, labels: int) -> DriftSignal:
    """The signal of a concept alarm after ``labels`` labels, graded by the rise."""
    return signal(
        mon,
        kind="concept",
        feature=None,
        test="adwin",
        statistic=alarm.estimate,
        p_value=None,
        effect=alarm.increase,
        threshold=alarm.baseline,
        detected=True,
        severity=sev.from_effect("error_rate", alarm.increase),
        n_reference=labels,
        n_current=alarm.width,
        tag=f"adwin{labels}",
    )
