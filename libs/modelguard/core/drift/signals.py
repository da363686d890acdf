"""Drift signals of a monitor: one :class:`DriftSignal` per window test result, per
sequential alarm and per concept alarm, with a deterministic id (the same window or
alarm of the same stream gets the same id after a restart, whatever the batching).

A sequential alarm's content is a function of the stream up to the alarm's event, never
of the batch it arrived in (issue 11 #9): its span is the window's from its start to
the alarm's event (``span``), its effect size is measured on the detector's window at
the alarm and ``n_current`` is that window's size (the KS window for a numeric feature,
the chi-square window for a categorical one). A concept alarm's content is a function
of the label stream (and the predictions joined to it): its span is the alarm label's
event time."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt

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
from modelguard.errors import InvariantError


def event_id(*parts: object) -> str:
    """A drift signal's deterministic id (the one scheme: ``contracts.ids.stable_id``)."""
    return stable_id("ds", *parts)


def origin(o: Observation, stream: str = "") -> str:
    """What identifies a monitor's stream: its first prediction (id, else time),
    prefixed by the state's ``stream`` name when it has one (the drift service: the
    partition, ``p0/<id>``), so two partitions' states never give one id.

    >>> from datetime import UTC, datetime
    >>> o = Observation("m", "v1", datetime(2026, 1, 1, tzinfo=UTC), {}, prediction_id="a")
    >>> origin(o), origin(o, "p2")
    ('a', 'p2/a')
    """
    first = o.prediction_id if o.prediction_id is not None else o.event_time.isoformat()
    return f"{stream}/{first}" if stream else first


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
    span: tuple[datetime, datetime] | None = None,
) -> DriftSignal:
    """A signal of ``mon``'s current window; ``span`` (start, end) replaces the
    window's span so far (an alarm's: the window up to the alarm's event)."""
    ref = mon.reference
    start, end = span or (mon.window_start or mon.window_end, mon.window_end or mon.window_start)
    if start is None or end is None:
        raise InvariantError(f"{ref.model}/{mon.version}: a signal of a window with no events")
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
    window: npt.NDArray[np.intp],
    position: int,
    span: tuple[datetime, datetime],
) -> DriftSignal:
    """The signal of a numeric feature's sequential alarm, graded by the location /
    scale shift over ``window``, the KS window at the alarm
    (:meth:`NumericDriftDetector.window_at`), and the KS distance for a KS alarm."""
    zmean, zsd = det.shift(window)
    severity = max(
        sev.from_effect("mean_shift", zmean),
        sev.from_effect("log_scale", math.log(max(zsd, 1e-9))),
    )
    if alarm.test == "ks_window":
        severity = max(severity, sev.from_effect("ks", alarm.statistic))
    return _alarm_signal(
        mon, name, alarm, zmean, severity, det.reference.n, int(window.size), position, span
    )


def categorical_alarm(
    mon: ModelMonitor,
    name: str,
    chi: SlidingWindowChi2,
    alarm: Alarm,
    span: tuple[datetime, datetime],
) -> DriftSignal:
    """The signal of a categorical feature's sequential alarm, graded by PSI."""
    # practical size: the PSI of the alarm window against the reference shares (the
    # window tests' scale); chi-square / window understated it (0.06 at threshold)
    psi = chi.window_psi(alarm.histogram)
    n = sum(alarm.histogram)  # the alarm window (chi-square windows are always full)
    return _alarm_signal(
        mon,
        name,
        alarm,
        psi,
        sev.from_effect("psi", psi),
        chi.reference.n,
        n,
        alarm.position,
        span,
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
    span: tuple[datetime, datetime],
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
        span=span,
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


def concept_alarm(mon: ModelMonitor, alarm: ConceptAlarm, labels: int, at: datetime) -> DriftSignal:
    """The signal of a concept alarm after ``labels`` labels, graded by the rise. Its
    span is the alarm label's event time ``at`` (start = end): a fact of the label
    stream, not of the prediction window open when the label happened to be read."""
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
        span=(at, at),
    )
