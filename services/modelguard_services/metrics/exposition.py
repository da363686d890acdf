"""Prometheus view of the processor state: built after each batch, read at scrape time.

The loop builds an immutable :class:`LiveView` from the partition states (cumulative
totals, last-N metrics) and swaps it in; :class:`MetricsCollector` renders the current
view, so a scrape never reads state that is being changed. Counters come from totals
kept in the (checkpointed) state, so they never double count after a restart.

Baseline comparison, per model (worst version): ``model_accuracy_drop_percent`` and
``model_accuracy_degraded`` (1 when the last-N accuracy of a version dropped by at least
``drift_drop_percent`` of the baseline and significantly, one-sided z test). This
process does not export ``model_concept_drift_detected``: concept drift (ADWIN on the
error stream) is the drift processor's gauge (ADR 0008), one owner per series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from modelguard.adapters.prometheus import counter_snapshot, gauge_snapshot, histogram_snapshot
from modelguard.contracts import telemetry
from modelguard.contracts.telemetry import Family
from modelguard.core.metrics import DURATION_BUCKETS_S, LogSketch, MetricsProcessor, PartitionState
from modelguard.core.metrics.processor import VersionKey

#: The label of the percentile gauges ("quantile" is reserved for summaries).
PERCENTILE = "percentile"

#: Last-N metric -> its gauge (labels model_name, model_version).
LIVE_GAUGES: dict[str, Family] = {
    "accuracy": telemetry.MODEL_ACCURACY,
    "precision": telemetry.MODEL_PRECISION,
    "recall": telemetry.MODEL_RECALL,
    "f1": telemetry.MODEL_F1_SCORE,
    "f1_macro": telemetry.MODEL_F1_MACRO_SCORE,
    "auc": telemetry.MODEL_ROC_AUC,
    "log_loss": telemetry.MODEL_LOG_LOSS,
    "brier": telemetry.MODEL_BRIER_SCORE,
    "mae": telemetry.MODEL_MAE,
    "rmse": telemetry.MODEL_RMSE,
    "mape": telemetry.MODEL_MAPE,
    "accuracy_drop_percent": telemetry.MODEL_VERSION_ACCURACY_DROP_PERCENT,
}


@dataclass(frozen=True)
class VersionView:
    live: dict[str, float]
    predicted: dict[str, int]
    errors: dict[str, int]
    n_labelled: int
    n_correct: int
    n_expired: int
    durations: dict[str, tuple[list[int], float]]  # stage -> (cumulative counts, sum)
    label_delay: dict[str, float]  # percentile ("50") -> seconds
    last_window: dict[str, dict[str, float]]


@dataclass(frozen=True)
class LiveView:
    versions: dict[VersionKey, VersionView] = field(default_factory=dict)
    orphans: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    labels_after_ttl: int = 0
    invalid_labels: int = 0
    clamped: dict[str, int] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    watermarks: dict[int, float] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()


def _add(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def build_view(processor: MetricsProcessor, states: Iterable[PartitionState]) -> LiveView:
    """Merge the partition states this worker owns into one view."""
    states = list(states)
    keys = sorted({k for st in states for k in st.versions})
    view = LiveView(
        labels_after_ttl=sum(st.labels_after_ttl for st in states),
        invalid_labels=sum(st.invalid_labels for st in states),
        buckets=DURATION_BUCKETS_S,
    )  # its dicts are filled below
    for model, version in keys:
        parts = [st.versions[(model, version)] for st in states if (model, version) in st.versions]
        predicted: dict[str, int] = {}
        errors: dict[str, int] = {}
        durations: dict[str, tuple[list[int], float]] = {}
        delay = LogSketch(alpha=parts[0].label_delay_s.alpha)
        last_window: dict[str, dict[str, float]] = {}
        for vs in parts:
            _add(predicted, vs.predicted)
            _add(errors, vs.errors)
            delay.merge(vs.label_delay_s)
            for stage, h in vs.durations.items():
                counts, total = durations.get(stage, ([0] * len(h.counts), 0.0))
                durations[stage] = (
                    [a + b for a, b in zip(counts, h.counts, strict=True)],
                    total + h.total,
                )
            last_window.update(vs.last_window_metrics)
        view.versions[(model, version)] = VersionView(
            live=processor.live(states, model, version),
            predicted=predicted,
            errors=errors,
            n_labelled=sum(vs.n_labelled for vs in parts),
            n_correct=sum(vs.n_correct for vs in parts),
            n_expired=sum(vs.n_expired for vs in parts),
            durations={
                s: ([sum(c[: i + 1]) for i in range(len(c))], total)
                for s, (c, total) in durations.items()
            },
            label_delay=(
                {p: delay.quantile(float(p) / 100) for p in ("50", "90", "99")}
                if delay.count
                else {}
            ),
            last_window=last_window,
        )
    for st in states:
        _add(view.orphans, st.orphan_labels)
        _add(view.late, st.late)
        _add(view.duplicates, st.duplicates)
        _add(view.clamped, st.clamped)
        _add(view.overflow, st.overflow)
        view.watermarks[st.partition] = st.watermark
        view.pending[st.partition] = len(st.pending)
    return view


class MetricsCollector(Collector):
    """Renders the current :class:`LiveView` (``view`` is replaced by the loop)."""

    def __init__(self) -> None:
        self.view = LiveView()

    def collect(self) -> Iterator[Metric]:
        view = self.view
        gauges = {k: gauge_snapshot(family) for k, family in LIVE_GAUGES.items()}
        drop = gauge_snapshot(telemetry.MODEL_ACCURACY_DROP_PERCENT)
        degraded = gauge_snapshot(telemetry.MODEL_ACCURACY_DEGRADED)
        trend = gauge_snapshot(telemetry.MODEL_ACCURACY_TREND)
        latency = gauge_snapshot(telemetry.MODEL_LATENCY_QUANTILE_SECONDS)
        coverage = gauge_snapshot(telemetry.MODEL_LABEL_COVERAGE_RATIO)
        delay = gauge_snapshot(telemetry.MODEL_LABEL_DELAY_SECONDS)
        predictions = counter_snapshot(telemetry.MODEL_PREDICTIONS)
        errors = counter_snapshot(telemetry.MODEL_PREDICTION_ERRORS)
        labelled = counter_snapshot(telemetry.MODEL_LABELS_JOINED)
        correct = counter_snapshot(telemetry.MODEL_CORRECT_PREDICTIONS)
        expired = counter_snapshot(telemetry.MODEL_LABELS_EXPIRED)
        duration = histogram_snapshot(telemetry.MODEL_INFERENCE_DURATION_SECONDS)
        worst: dict[str, float] = {}
        drift: dict[str, float] = {}
        for (model, version), v in view.versions.items():
            for key, g in gauges.items():
                if key in v.live:
                    g.add_metric([model, version], v.live[key])
            if "accuracy_drop_percent" in v.live:
                worst[model] = max(worst.get(model, -1e300), v.live["accuracy_drop_percent"])
            if "accuracy_degraded" in v.live:
                drift[model] = max(drift.get(model, 0.0), v.live["accuracy_degraded"])
            # the last-N window holds joined pairs only (always 1.0): coverage comes from
            # the latest closed finest event-time window, where expiries are counted, and
            # until one has closed, from the totals since start (pending ones excluded)
            finest = (
                v.last_window[min(v.last_window, key=lambda w: float(w.rstrip("s")))]
                if v.last_window
                else {}
            )
            if "label_coverage" in finest:
                coverage.add_metric([model, version], finest["label_coverage"])
            elif v.n_labelled + v.n_expired:
                coverage.add_metric([model, version], v.n_labelled / (v.n_labelled + v.n_expired))
            for window, m in sorted(v.last_window.items()):
                if "accuracy_trend" in m:
                    trend.add_metric([model, version, window], m["accuracy_trend"])
                for q in ("50", "95", "99"):
                    if f"latency_p{q}_ms" in m:
                        latency.add_metric(
                            [model, version, window, q], m[f"latency_p{q}_ms"] / 1000
                        )
            for q, s in v.label_delay.items():
                delay.add_metric([model, version, q], s)
            for c, n in sorted(v.predicted.items()):
                predictions.add_metric([model, version, c], n)
            for e, n in sorted(v.errors.items()):
                errors.add_metric([model, version, e], n)
            labelled.add_metric([model, version], v.n_labelled)
            correct.add_metric([model, version], v.n_correct)
            expired.add_metric([model, version], v.n_expired)
            for stage, (cum, total) in sorted(v.durations.items()):
                bounds = [f"{b:g}" for b in view.buckets] + ["+Inf"]
                duration.add_metric(
                    [model, version, stage],
                    list(zip(bounds, [float(c) for c in cum], strict=True)),
                    total,
                )
        for model, d in sorted(worst.items()):
            drop.add_metric([model], d)
        for model, f in sorted(drift.items()):
            degraded.add_metric([model], f)
        yield from gauges.values()
        yield from (drop, degraded, trend, latency, coverage, delay)
        yield from (predictions, errors, labelled, correct, expired, duration)
        orphans = counter_snapshot(telemetry.MODEL_ORPHAN_LABELS)
        for model, n in sorted(view.orphans.items()):
            orphans.add_metric([model or "unknown"], n)
        late = counter_snapshot(telemetry.MODELGUARD_METRICS_LATE_EVENTS)
        for kind, n in sorted(view.late.items()):
            late.add_metric([kind], n)
        dup = counter_snapshot(telemetry.MODELGUARD_METRICS_DUPLICATE_EVENTS)
        for kind, n in sorted(view.duplicates.items()):
            dup.add_metric([kind], n)
        other = counter_snapshot(telemetry.MODELGUARD_METRICS_REJECTED_LABELS)
        other.add_metric(["after_ttl"], view.labels_after_ttl)
        other.add_metric(["invalid_for_task"], view.invalid_labels)
        wm = gauge_snapshot(telemetry.MODELGUARD_METRICS_WATERMARK_SECONDS)
        pend = gauge_snapshot(telemetry.MODELGUARD_METRICS_PENDING_PREDICTIONS)
        for p, w in sorted(view.watermarks.items()):
            if w > -1e300:
                wm.add_metric([str(p)], w)
            pend.add_metric([str(p)], view.pending.get(p, 0))
        clamped = counter_snapshot(telemetry.MODELGUARD_METRICS_CLAMPED_EVENTS)
        for kind, n in sorted(view.clamped.items()):
            clamped.add_metric([kind], n)
        overflow = counter_snapshot(telemetry.MODELGUARD_METRICS_EVICTED)
        for kind, n in sorted(view.overflow.items()):
            overflow.add_metric([kind], n)
        yield from (orphans, late, dup, other, wm, pend, clamped, overflow)
