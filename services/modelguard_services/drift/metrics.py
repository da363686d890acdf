"""Prometheus drift metrics (names from the design guide, plus a few in the same style).

Gauges carry ``model_name`` and ``model_version`` (drift is tested per version); the
per-feature ones add ``feature``. ``psi_score``/``ks_statistic`` and friends hold the
last closed window's values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift.processor import WarmupDropped, WindowReport


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._severity: dict[tuple[str, str, str], int] = {}
        mv = ["model_name", "model_version"]
        mvf = [*mv, "feature"]
        self.data_drift = Gauge(
            "model_data_drift_detected",
            "1 when the model version's data drifted (dataset share above "
            "the threshold, or a sequential alarm in the current window).",
            mv,
            registry=registry,
        )
        self.ratio = Gauge(
            "model_drifted_columns_ratio",
            "Share of features that drifted in the last closed window.",
            mv,
            registry=registry,
        )
        self.concept = Gauge(
            "model_concept_drift_detected",
            "1 when the error rate rose above its baseline (ADWIN alarm), until it is back.",
            mv,
            registry=registry,
        )
        self.psi = Gauge(
            "psi_score",
            "Population stability index of a feature, last window.",
            mvf,
            registry=registry,
        )
        self.ks = Gauge(
            "ks_statistic",
            "Kolmogorov-Smirnov distance of a feature, last window.",
            mvf,
            registry=registry,
        )
        self.ks_p = Gauge(
            "ks_p_value",
            "KS p-value of a feature (unadjusted), last window.",
            mvf,
            registry=registry,
        )
        self.jsd = Gauge(
            "jensen_shannon_distance",
            "Jensen-Shannon distance (base 2) of a feature, last window.",
            mvf,
            registry=registry,
        )
        self.wasserstein = Gauge(
            "wasserstein_distance",
            "Wasserstein distance of a numeric feature in reference "
            "standard deviations, last window.",
            mvf,
            registry=registry,
        )
        self.feature_drift = Gauge(
            "model_feature_drift_detected",
            "1 when the feature drifted (window test or sequential alarm).",
            mvf,
            registry=registry,
        )
        self.feature_severity = Gauge(
            "model_feature_drift_severity",
            "Drift severity of the feature, 0 NONE .. 4 CRITICAL.",
            mvf,
            registry=registry,
        )
        self.signals = Counter(
            "model_drift_signals_total",
            "Drift signals published, by kind, test and severity.",
            ["model_name", "kind", "test", "severity"],
            registry=registry,
        )
        self.windows = Counter(
            "model_drift_windows_total", "Drift windows evaluated.", mv, registry=registry
        )
        self.warmup_dropped = Counter(
            "model_drift_warmup_dropped_total",
            "Warm-up predictions never tested: the warm-up buffer was full while the "
            "worker's partitions caught up on a backlog (the latest by event time go).",
            mv,
            registry=registry,
        )
        self.reference = Gauge(
            "model_drift_reference_info",
            "1 for the reference a model version is tested against.",
            [*mv, "reference_id"],
            registry=registry,
        )

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

    def on_reference(self, model: str, version: str, reference_id: str) -> None:
        self.reference.labels(model, version, reference_id).set(1)
