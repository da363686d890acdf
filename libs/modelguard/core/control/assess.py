"""``assess(policy, evidence) -> Verdict``: a pure judgement of one model version.

Verdicts: ``healthy`` (every guardrail has enough fresh evidence and passes),
``breach`` (a guardrail's breach is confirmed: enough samples, ``consecutive`` windows,
``for_seconds``), ``inconclusive`` (missing, stale or too-small evidence, or a breach
not yet confirmed) and ``error`` (evidence that cannot be judged, e.g. a metric the
policy needs is absent from a window). Missing or stale evidence is never healthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelguard.core.control.evidence import DriftRecord, WindowRecord
from modelguard.core.control.policy import (
    AccuracyDropGuardrail,
    DriftGuardrail,
    Policy,
    ThresholdGuardrail,
)
from modelguard.core.metrics.formulas import accuracy_drop_percent, error_rate

Status = Literal["healthy", "breach", "inconclusive", "error"]
_RANK: dict[Status, int] = {"healthy": 0, "inconclusive": 1, "error": 2, "breach": 3}
Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is known about one version at ``now``.

    ``windows``: its recent metric windows (already filtered to the policy's window);
    ``baseline``: the champion's recent windows (for ``baseline: champion``; empty for
    the champion itself); ``drift``: drift signals that concern this version.
    """

    version: str
    now: datetime
    windows: Sequence[WindowRecord] = ()
    baseline: Sequence[WindowRecord] = ()
    drift: Sequence[DriftRecord] = ()
    is_champion: bool = False


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    name: str
    status: Status
    reason: str
    value: float | None = None
    threshold: float | None = None
    event_id: str | None = None
    samples: int = 0

    def as_evidence(self) -> dict[str, Scalar]:
        return {
            "guardrail": self.name,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "event_id": self.event_id,
            "samples": self.samples,
            "reason": self.reason[:200],
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    version: str
    status: Status
    results: tuple[GuardrailResult, ...] = field(default_factory=tuple)

    @property
    def breaches(self) -> list[GuardrailResult]:
        return [r for r in self.results if r.status == "breach"]

    @property
    def reason(self) -> str:
        worst = [r for r in self.results if r.status == self.status]
        return "; ".join(f"{r.name}: {r.reason}" for r in worst) or self.status

    @property
    def decisive_event_id(self) -> str | None:
        """The newest evidence event behind the verdict's worst results."""
        ids = [r.event_id for r in self.results if r.status == self.status and r.event_id]
        return max(ids) if ids else None

    def evidence(self) -> list[dict[str, Scalar]]:
        return [r.as_evidence() for r in self.results]


def assess(policy: Policy, evidence: Evidence) -> Verdict:
    """Judge one version against every guardrail of ``policy`` (pure).

    >>> from modelguard.core.control.policy import parse_policies
    >>> from datetime import UTC
    >>> p = parse_policies("models: {m: {guardrails: [{name: e, kind: error_rate,"
    ...                    " threshold: 0.01}]}}")["m"]
    >>> assess(p, Evidence("v1", now=datetime(2026, 1, 1, tzinfo=UTC))).status
    'inconclusive'
    """
    results: list[GuardrailResult] = []
    for g in policy.guardrails:
        if isinstance(g, DriftGuardrail):
            results.append(_drift(g, evidence))
            continue
        if (
            isinstance(g, AccuracyDropGuardrail)
            and g.baseline == "champion"
            and evidence.is_champion
        ):
            continue  # compared with itself: not applicable
        results.append(_threshold(policy, g, evidence))
    if not results:
        return Verdict(evidence.version, "inconclusive", ())
    status = max((r.status for r in results), key=lambda s: _RANK[s])
    return Verdict(evidence.version, status, tuple(results))


def _value(
    g: ThresholdGuardrail | AccuracyDropGuardrail, w: WindowRecord, ev: Evidence
) -> tuple[float | None, str | None]:
    """(value, error) of guardrail ``g`` on window ``w``; value None and no error means
    not enough evidence (e.g. no baseline)."""
    if isinstance(g, ThresholdGuardrail):
        if g.kind == "error_rate" and g.metric is None:
            if "error_rate" in w.metrics:
                return w.metrics["error_rate"], None
            return error_rate(w.n_errors, w.n_predictions), None
        name = g.metric_name
        if name not in w.metrics:
            return None, f"metric {name!r} missing from window {w.event_id}"
        return w.metrics[name], None
    if g.metric not in w.metrics:
        return None, f"metric {g.metric!r} missing from window {w.event_id}"
    acc = w.metrics[g.metric]
    if isinstance(g.baseline, float):
        base: float | None = g.baseline
    else:
        base = _baseline_accuracy(g.metric, w, ev.baseline)
    if base is None or base <= 0:
        return None, None
    return accuracy_drop_percent(base, acc), None


def _baseline_accuracy(
    metric: str, w: WindowRecord, baseline: Sequence[WindowRecord]
) -> float | None:
    same = [b for b in baseline if b.window_start == w.window_start and metric in b.metrics]
    if same:
        return same[-1].metrics[metric]
    before = [b for b in baseline if b.window_end <= w.window_end and metric in b.metrics]
    if before:
        return max(before, key=lambda b: b.window_end).metrics[metric]
    return None


def _samples(g: ThresholdGuardrail | AccuracyDropGuardrail, w: WindowRecord) -> int:
    if isinstance(g, ThresholdGuardrail) and g.kind in ("error_rate", "latency"):
        return w.n_predictions
    return w.n_labelled


def _threshold(
    policy: Policy, g: ThresholdGuardrail | AccuracyDropGuardrail, ev: Evidence
) -> GuardrailResult:
    if isinstance(g, AccuracyDropGuardrail):
        threshold, above, hyst = g.max_drop_percent, True, g.hysteresis
    else:
        threshold, above, hyst = g.threshold, g.above, g.hysteresis
    windows = sorted(ev.windows, key=lambda w: (w.window_end, w.event_id))
    if not windows:
        return GuardrailResult(g.name, "inconclusive", "no metric windows", threshold=threshold)
    latest = windows[-1]
    age = (ev.now - latest.window_end).total_seconds()
    if age > policy.max_evidence_age_seconds:
        return GuardrailResult(
            g.name,
            "inconclusive",
            f"stale: latest window ended {age:.0f}s ago (max {policy.max_evidence_age_seconds:g}s)",
            threshold=threshold,
            event_id=latest.event_id,
        )
    # Walk the windows in order with hysteresis: a breach starts beyond the threshold
    # and clears only once the value is back beyond threshold -/+ hysteresis.
    breaching = False
    streak: list[WindowRecord] = []
    last_value: float | None = None
    for w in windows:
        if _samples(g, w) < g.min_samples:
            continue
        value, _err = _value(g, w, ev)
        if value is None:
            continue
        last_value = value
        crosses = value > threshold if above else value < threshold
        clears = value <= threshold - hyst if above else value >= threshold + hyst
        if not breaching and crosses:
            breaching, streak = True, [w]
        elif breaching and clears:
            breaching, streak = False, []
        elif breaching:
            streak.append(w)
    n = _samples(g, latest)
    value, err = _value(g, latest, ev)
    if err is not None and n >= g.min_samples:
        return GuardrailResult(g.name, "error", err, threshold=threshold, event_id=latest.event_id)
    if breaching:
        span = (streak[-1].window_end - streak[0].window_start).total_seconds()
        confirmed = len(streak) >= g.consecutive and span >= g.for_seconds
        word = "confirmed" if confirmed else "pending"
        return GuardrailResult(
            g.name,
            "breach" if confirmed else "inconclusive",
            f"{word} breach: {last_value:.4g} {'>' if above else '<'} {threshold:g}"
            f" in {len(streak)} window(s) over {span:.0f}s"
            f" (needs {g.consecutive} and {g.for_seconds:g}s)",
            value=last_value,
            threshold=threshold,
            event_id=streak[-1].event_id,
            samples=_samples(g, streak[-1]),
        )
    if n < g.min_samples:
        return GuardrailResult(
            g.name,
            "inconclusive",
            f"{n} samples in latest window < min_samples {g.min_samples}",
            threshold=threshold,
            event_id=latest.event_id,
            samples=n,
        )
    if value is None:
        return GuardrailResult(
            g.name, "inconclusive", "no baseline to compare with", event_id=latest.event_id
        )
    return GuardrailResult(
        g.name,
        "healthy",
        f"{value:.4g} within {threshold:g}",
        value=value,
        threshold=threshold,
        event_id=latest.event_id,
        samples=n,
    )


def _drift(g: DriftGuardrail, ev: Evidence) -> GuardrailResult:
    horizon = ev.now - timedelta(seconds=g.max_age_seconds)
    recent = [
        d
        for d in ev.drift
        if d.kind == g.signal_kind and d.window_end >= horizon and d.n_current >= g.min_samples
    ]
    if not recent and not g.required:
        return GuardrailResult(g.name, "healthy", f"no {g.signal_kind} drift signal")
    if not recent:
        return GuardrailResult(
            g.name,
            "inconclusive",
            f"no {g.signal_kind} drift signal in the last {g.max_age_seconds:g}s",
        )
    hits = [d for d in recent if d.drift_detected and d.severity >= int(g.severity)]
    windows = sorted({d.window_end for d in hits})
    latest = max(recent, key=lambda d: (d.window_end, d.event_id))
    if len(windows) >= g.consecutive and hits:
        worst = max(hits, key=lambda d: (d.severity, d.window_end, d.event_id))
        where = worst.feature or "dataset"
        return GuardrailResult(
            g.name,
            "breach",
            f"{g.signal_kind} drift on {where} ({worst.test}={worst.statistic:.4g},"
            f" severity {worst.severity}) in {len(windows)} window(s)",
            value=worst.statistic,
            event_id=worst.event_id,
            samples=worst.n_current,
        )
    return GuardrailResult(
        g.name,
        "healthy",
        f"no {g.signal_kind} drift at or above {g.min_severity}",
        event_id=latest.event_id,
        samples=latest.n_current,
    )
