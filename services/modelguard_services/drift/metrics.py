"""Prometheus drift metrics (names from the design guide, plus a few in the same style).

Gauges carry ``model_name`` and ``model_version`` (drift is tested per version); the
per-feature ones add ``feature``. ``psi_score``/``ks_statistic`` and friends hold the
last closed window's values.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import counter, gauge
from modelguard.contracts import telemetry
from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift import WarmupDropped, WindowReport


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._severity: dict[tuple[str, str, str], int] = {}
        t = telemetry
        self.data_drift = gauge(t.MODEL_DATA_DRIFT_DETECTED, registry)
        self.ratio = gauge(t.MODEL_DRIFTED_COLUMNS_RATIO, registry)
        self.concept = gauge(t.MODEL_CONCEPT_DRIFT_DETECTED, registry)
        self.psi = gauge(t.PSI_SCORE, registry)
        self.ks = gauge(t.KS_STATISTIC, registry)
        self.ks_p = gauge(t.KS_P_VALUE, registry)
        self.jsd = gauge(t.JENSEN_SHANNON_DISTANCE, registry)
        self.wasserstein = gauge(t.WASSERSTEIN_DISTANCE, registry)
        self.feature_drift = gauge(t.MODEL_FEATURE_DRIFT_DETECTED, registry)
        self.feature_severity = gauge(t.MODEL_FEATURE_DRIFT_SEVERITY, registry)
        self.signals = counter(t.MODEL_DRIFT_SIGNALS, registry)
        self.windows = counter(t.MODEL_DRIFT_WINDOWS, registry)
        self.warmup_dropped = counter(t.MODEL_DRIFT_WARMUP_DROPPED, registry)
        self.reference = gauge(t.MODEL_DRIFT_REFERENCE_INFO, registry)
        self.concept_unused = counter(t.MODEL_DRIFT_CONCEPT_UNUSED, registry)
        #: per partition, the state's counts already exported (a restored state's
        #: counts were exported by the process that made them)
        self._unused_seen: dict[int, dict[str, int]] = {}

    def on_signal(self, s: DriftSignal) -> None:
        self.signals.labels(s.model, s.kind, s.test, s.severity.name).inc()
        version = s.version or ""
        if not s.drift_detected or s.test in ("ks", "chi_square", "drifted_share"):
            return  # window verdicts are applied by on_report
        if s.kind == "data" and s.feature:
            self.data_drift.labels(s.model, version).set(1)
            self.feature_drift.labels(s.model, version, s.feature).set(1)
            key = (s.model, version, s.feature)
            level = max(int(s.severity), self._current_severity(*key))
            self._severity[key] = level
            self.feature_severity.labels(*key).set(level)
        elif s.kind == "concept":
            self.concept.labels(s.model, version).set(1)

    def _current_severity(self, model: str, version: str, feature: str) -> int:
        return self._severity.get((model, version, feature), 0)

    def on_report(self, r: WindowReport) -> None:
        v = r.verdict
        seq = {s.feature for s in r.sequential if s.drift_detected and s.kind == "data"}
        self.windows.labels(r.model, r.version).inc()
        self.ratio.labels(r.model, r.version).set(v.drifted_share)
        self.data_drift.labels(r.model, r.version).set(1 if v.dataset_drift or seq else 0)
        self.concept.labels(r.model, r.version).set(1 if r.concept_drifted else 0)
        for res in v.results:
            if res.kind not in ("data", "prediction") or not res.feature:
                continue
            if res.test not in ("ks", "chi_square"):
                continue
            labels = (r.model, r.version, res.feature)
            m = res.metrics
            self.psi.labels(*labels).set(m.get("psi", 0.0))
            self.jsd.labels(*labels).set(m.get("jensen_shannon", 0.0))
            if res.test == "ks":
                self.ks.labels(*labels).set(res.statistic)
                self.ks_p.labels(*labels).set(res.p_value or 0.0)
                self.wasserstein.labels(*labels).set(m.get("wasserstein_sigma", 0.0))
            if res.kind == "data":
                drifted = res.drift_detected or res.feature in seq
                self.feature_drift.labels(*labels).set(1 if drifted else 0)
                self._severity[labels] = int(res.severity)
                self.feature_severity.labels(*labels).set(int(res.severity))

    def on_warmup_dropped(self, d: WarmupDropped) -> None:
        self.warmup_dropped.labels(d.model, d.version).inc(d.dropped)

    def on_unused(self, partition: int, counts: Mapping[str, int]) -> None:
        """Export what a partition's state counted since the last call."""
        seen = self._unused_seen.setdefault(partition, dict(counts))
        for reason, n in counts.items():
            if n > seen.get(reason, 0):
                self.concept_unused.labels(reason).inc(n - seen.get(reason, 0))
            seen[reason] = n

    def forget_unused(self, partition: int, counts: Mapping[str, int] | None = None) -> None:
        """A partition's state was replaced (``counts``: the restored state's, already
        exported by the process that made them) or released (None)."""
        if counts is None:
            self._unused_seen.pop(partition, None)
        else:
            self._unused_seen[partition] = dict(counts)

    def on_reference(self, model: str, version: str, reference_id: str) -> None:
        self.reference.labels(model, version, reference_id).set(1)
