"""The telemetry catalogue: every Prometheus family modelguard exports, in one place.

Each :class:`Family` says a metric's name, type, labels, help and buckets, and the one
process kind that exports it. Exporters build their metrics from these declarations
(``modelguard.adapters.prometheus``), the dashboard generator and the alert rules name
only families declared here (``tests/unit/test_telemetry_catalogue.py``), so a metric
name lives in exactly one place.

Counter names are declared without ``_total`` (``prometheus_client`` adds it).

>>> MODEL_ACCURACY.series
('model_accuracy',)
>>> MODEL_PREDICTIONS.series
('model_predictions_total',)
>>> by_series("model_inference_duration_seconds_bucket") is MODEL_INFERENCE_DURATION_SECONDS
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Kind = Literal["counter", "gauge", "histogram"]

#: Serving stages a model server times (the SDK's ``timer.stage``); ``total`` is the
#: whole request and is derived, never timed as a stage of its own.
Stage = Literal["preprocessing", "inference", "postprocessing"]
LATENCY_STAGES: tuple[Stage, ...] = get_args(Stage)
TOTAL_STAGE = "total"
#: Buckets of ``model_inference_duration_seconds``: 10 ms to 10 s (the requirement).
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Family:
    """One metric family: what Prometheus sees and who exports it."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    exporter: str = ""

    @property
    def series(self) -> tuple[str, ...]:
        """The names the family's samples carry (what PromQL selects)."""
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{s}" for s in ("bucket", "sum", "count"))
        return (self.name,)


CATALOGUE: dict[str, Family] = {}


def _family(
    name: str,
    kind: Kind,
    help: str,
    labels: tuple[str, ...] = (),
    *,
    buckets: tuple[float, ...] | None = None,
    exporter: str,
) -> Family:
    if name in CATALOGUE:
        raise ValueError(f"metric family {name!r} is declared twice")
    family = Family(name, kind, help, labels, buckets, exporter)
    CATALOGUE[name] = family
    return family


def by_series(series: str) -> Family | None:
    """The family a sample name (``x_total``, ``x_bucket``, ``x``) belongs to, if any."""
    for family in CATALOGUE.values():
        if series in family.series:
            return family
    return None


class _Exporter:
    """Declares the families one process kind exports (``_metrics.gauge(name, help, labels)``)."""

    def __init__(self, exporter: str) -> None:
        self.exporter = exporter

    def counter(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Family:
        return _family(name, "counter", help, labels, exporter=self.exporter)

    def gauge(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Family:
        return _family(name, "gauge", help, labels, exporter=self.exporter)

    def histogram(
        self, name: str, help: str, labels: tuple[str, ...] = (), *, buckets: tuple[float, ...]
    ) -> Family:
        return _family(name, "histogram", help, labels, buckets=buckets, exporter=self.exporter)


_sdk = _Exporter("sdk")
_routing_client = _Exporter("routing-client")
_every_consumer = _Exporter("every consumer")
_every_service = _Exporter("every service")
_metrics = _Exporter("metrics")
_validator = _Exporter("validator")
_drift = _Exporter("drift")
_experiments = _Exporter("experiments")
_controller = _Exporter("controller")
_simulator = _Exporter("simulator")

# label sets many families share
_MODEL = ("model_name",)
_MODEL_VERSION = (*_MODEL, "model_version")
_FEATURE = (*_MODEL_VERSION, "feature")
_EXPERIMENT = ("experiment_id", "model_name")
_ARM = (*_EXPERIMENT, "arm")
_ARM_METRIC = (*_ARM, "metric")

# -- sdk ----------------------------------------------------------------------
MODELGUARD_SDK_EVENTS = _sdk.counter(
    "modelguard_sdk_events",
    "Events accepted into the SDK's send buffer, by event type.",
    ("event_type",),
)
MODELGUARD_SDK_DROPPED = _sdk.counter(
    "modelguard_sdk_dropped",
    "Events dropped before sending (buffer full, or refused by the producer), by event "
    "type and reason.",
    ("event_type", "reason"),
)
MODELGUARD_SDK_DELIVERY_FAILURES = _sdk.counter(
    "modelguard_sdk_delivery_failures",
    "Events the broker did not acknowledge (e.g. timed out), by topic and error.",
    ("topic", "error"),
)
MODELGUARD_SDK_INVALID_CALLS = _sdk.counter(
    "modelguard_sdk_invalid_calls",
    "SDK calls rejected for invalid arguments, by event type.",
    ("event_type",),
)
MODELGUARD_SDK_BUFFERED_MESSAGES = _sdk.gauge(
    "modelguard_sdk_buffered_messages", "Messages waiting in the SDK's send buffer."
)
MODELGUARD_SDK_INFERENCE_DURATION_SECONDS = _sdk.histogram(
    "modelguard_sdk_inference_duration_seconds",
    "Time spent serving a prediction, by stage, as timed in this model server "
    "(sdk.timer / sdk.timed); the fleet-wide view is model_inference_duration_seconds.",
    (*_MODEL_VERSION, "stage"),
    buckets=DURATION_BUCKETS,
)

# -- routing ------------------------------------------------------------------
MODELGUARD_ROUTING_TABLE_REVISION = _routing_client.gauge(
    "modelguard_routing_table_revision", "Revision of the routing table in use, per model.", _MODEL
)
MODELGUARD_ROUTING_TABLE_UPDATES = _routing_client.counter(
    "modelguard_routing_table_updates", "Routing tables applied by the client, per model.", _MODEL
)
MODELGUARD_ROUTING_REDIS_ERRORS = _routing_client.counter(
    "modelguard_routing_redis_errors",
    "Failed Redis operations of the routing client (listen, load, decode).",
    ("operation",),
)
MODELGUARD_ROUTING_REDIS_CONNECTED = _routing_client.gauge(
    "modelguard_routing_redis_connected", "1 while the routing client's change subscription is up."
)
MODELGUARD_ROUTING_PROPAGATION_SECONDS = _routing_client.histogram(
    "modelguard_routing_propagation_seconds",
    "Time from a table's write (updated_at) to its use by this client.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
)
MODELGUARD_ROUTING_STALE_ASSIGNMENTS = _routing_client.counter(
    "modelguard_routing_stale_assignments",
    "Assignments served from the last known good table while Redis was unreachable.",
)

MODELGUARD_ROUTING_TABLES_REFUSED = _routing_client.counter(
    "modelguard_routing_tables_refused",
    "Routing tables not applied because they name an unregistered version.",
    _MODEL,
)

# -- ingest -------------------------------------------------------------------
MODELGUARD_EVENTS_CONSUMED = _every_consumer.counter(
    "modelguard_events_consumed",
    "Events consumed, by topic and validation outcome (valid/invalid).",
    ("service", "topic", "outcome"),
)
MODELGUARD_DEAD_LETTERS = _every_consumer.counter(
    "modelguard_dead_letters",
    "Events sent to the dead-letter topic, by source topic and error kind.",
    ("service", "source_topic", "error_kind"),
)
MODELGUARD_CONSUMER_ERRORS = _every_consumer.counter(
    "modelguard_consumer_errors",
    "Errors reported by the Kafka consumer (not per message).",
    ("service", "code"),
)


# -- every service ------------------------------------------------------------
MODELGUARD_DEPENDENCY_UP = _every_service.gauge(
    "modelguard_dependency_up",
    "1 while the service reaches the dependency, 0 during an outage.",
    ("dependency",),
)

# -- metrics ------------------------------------------------------------------
MODEL_ACCURACY = _metrics.gauge(
    "model_accuracy", "Accuracy over the last N labelled predictions.", _MODEL_VERSION
)
MODEL_PRECISION = _metrics.gauge(
    "model_precision", "Precision (binary, else macro) over the last N labels.", _MODEL_VERSION
)
MODEL_RECALL = _metrics.gauge(
    "model_recall", "Recall (binary, else macro) over the last N labels.", _MODEL_VERSION
)
MODEL_F1_SCORE = _metrics.gauge(
    "model_f1_score", "F1 score (binary, else macro) over the last N labels.", _MODEL_VERSION
)
MODEL_F1_MACRO_SCORE = _metrics.gauge(
    "model_f1_macro_score", "Macro F1 over the last N labels.", _MODEL_VERSION
)
MODEL_ROC_AUC = _metrics.gauge(
    "model_roc_auc", "ROC-AUC over the last N labels (with probabilities).", _MODEL_VERSION
)
MODEL_LOG_LOSS = _metrics.gauge(
    "model_log_loss", "Log-loss over the last N labels (with probabilities).", _MODEL_VERSION
)
MODEL_BRIER_SCORE = _metrics.gauge(
    "model_brier_score", "Brier score over the last N labels.", _MODEL_VERSION
)
MODEL_MAE = _metrics.gauge(
    "model_mae", "Mean absolute error over the last N labels (regression).", _MODEL_VERSION
)
MODEL_RMSE = _metrics.gauge(
    "model_rmse", "Root mean squared error over the last N labels (regression).", _MODEL_VERSION
)
MODEL_MAPE = _metrics.gauge(
    "model_mape", "Mean absolute percentage error, last N labels (regression).", _MODEL_VERSION
)
MODEL_VERSION_ACCURACY_DROP_PERCENT = _metrics.gauge(
    "model_version_accuracy_drop_percent",
    "Accuracy drop of a version against the model's baseline, percent of baseline.",
    _MODEL_VERSION,
)
MODEL_ACCURACY_DROP_PERCENT = _metrics.gauge(
    "model_accuracy_drop_percent",
    "Largest accuracy drop among a model's versions, percent of its baseline.",
    _MODEL,
)
MODEL_ACCURACY_DEGRADED = _metrics.gauge(
    "model_accuracy_degraded",
    "1 when a version's last-N accuracy dropped significantly (one-sided z test) by at "
    "least the configured percentage below the model's baseline.",
    _MODEL,
)
MODEL_ACCURACY_TREND = _metrics.gauge(
    "model_accuracy_trend",
    "Accuracy of the last closed window minus the previous one, per window.",
    (*_MODEL_VERSION, "window"),
)
MODEL_LATENCY_QUANTILE_SECONDS = _metrics.gauge(
    "model_latency_quantile_seconds",
    "Latency percentiles (p50/p95/p99) over the last closed window, per window.",
    (*_MODEL_VERSION, "window", "percentile"),
)
MODEL_LABEL_COVERAGE_RATIO = _metrics.gauge(
    "model_label_coverage_ratio",
    "Share of resolved predictions (labelled or expired without a label) that got a label, "
    "in the latest closed event-time window of the finest length.",
    _MODEL_VERSION,
)
MODEL_LABEL_DELAY_SECONDS = _metrics.gauge(
    "model_label_delay_seconds",
    "Label delay percentiles (label time minus prediction time), since start.",
    (*_MODEL_VERSION, "percentile"),
)
MODEL_PREDICTIONS = _metrics.counter(
    "model_predictions",
    "Predictions served, by model version and predicted class.",
    (*_MODEL_VERSION, "predicted_class"),
)
MODEL_PREDICTION_ERRORS = _metrics.counter(
    "model_prediction_errors",
    "Failed predictions, by model version and error type.",
    (*_MODEL_VERSION, "error_type"),
)
MODEL_LABELS_JOINED = _metrics.counter(
    "model_labels_joined", "Predictions joined with their label.", _MODEL_VERSION
)
MODEL_CORRECT_PREDICTIONS = _metrics.counter(
    "model_correct_predictions", "Labelled predictions that were right.", _MODEL_VERSION
)
MODEL_LABELS_EXPIRED = _metrics.counter(
    "model_labels_expired",
    "Predictions whose label did not arrive within the label TTL.",
    _MODEL_VERSION,
)
MODEL_INFERENCE_DURATION_SECONDS = _metrics.histogram(
    "model_inference_duration_seconds",
    "Serving latency by stage (total = whole request).",
    (*_MODEL_VERSION, "stage"),
    buckets=DURATION_BUCKETS,
)
MODEL_ORPHAN_LABELS = _metrics.counter(
    "model_orphan_labels",
    "Labels whose prediction never arrived within the grace period (model from the label).",
    _MODEL,
)
MODELGUARD_METRICS_LATE_EVENTS = _metrics.counter(
    "modelguard_metrics_late_events",
    "Events (or expiries) for an already closed window, left out of that window.",
    ("kind",),
)
MODELGUARD_METRICS_DUPLICATE_EVENTS = _metrics.counter(
    "modelguard_metrics_duplicate_events",
    "Predictions or labels seen again (same prediction id), not counted twice.",
    ("kind",),
)
MODELGUARD_METRICS_REJECTED_LABELS = _metrics.counter(
    "modelguard_metrics_rejected_labels", "Labels that could not be used, by reason.", ("reason",)
)
MODELGUARD_METRICS_WATERMARK_SECONDS = _metrics.gauge(
    "modelguard_metrics_watermark_seconds",
    "Event-time watermark per partition (Unix seconds).",
    ("partition",),
)
MODELGUARD_METRICS_PENDING_PREDICTIONS = _metrics.gauge(
    "modelguard_metrics_pending_predictions",
    "Predictions waiting for their label, per partition.",
    ("partition",),
)

MODELGUARD_METRICS_CLAMPED_EVENTS = _metrics.counter(
    "modelguard_metrics_clamped_events",
    "Events dated further ahead of their arrival (broker) time than the tolerance, "
    "counted at arrival time plus the tolerance.",
    ("kind",),
)
MODELGUARD_METRICS_EVICTED = _metrics.counter(
    "modelguard_metrics_evicted",
    "Entries evicted by a memory bound (prediction: expired early; label: counted "
    "orphan; id: forgotten for deduplication).",
    ("kind",),
)
# -- validator ----------------------------------------------------------------
MODELGUARD_VALIDATED_PREDICTIONS = _validator.counter(
    "modelguard_validated_predictions",
    "Valid predictions seen by the edge validator, by version and predicted class.",
    (*_MODEL_VERSION, "predicted_class"),
)
MODELGUARD_VALIDATED_PREDICTION_ERRORS = _validator.counter(
    "modelguard_validated_prediction_errors",
    "Failed requests seen by the edge validator, by version and error type.",
    (*_MODEL_VERSION, "error_type"),
)

MODELGUARD_VALIDATED_DUPLICATES = _validator.counter(
    "modelguard_validated_duplicates",
    "Predictions whose id the edge validator had seen already (counted once).",
)
# -- drift --------------------------------------------------------------------
MODEL_DATA_DRIFT_DETECTED = _drift.gauge(
    "model_data_drift_detected",
    "1 when the model version's data drifted (dataset share above the threshold, or a "
    "sequential alarm in the current window).",
    _MODEL_VERSION,
)
MODEL_DRIFTED_COLUMNS_RATIO = _drift.gauge(
    "model_drifted_columns_ratio",
    "Share of features that drifted in the last closed window.",
    _MODEL_VERSION,
)
MODEL_CONCEPT_DRIFT_DETECTED = _drift.gauge(
    "model_concept_drift_detected",
    "1 when the error rate rose above its baseline (ADWIN alarm), until it is back.",
    _MODEL_VERSION,
)
PSI_SCORE = _drift.gauge(
    "psi_score", "Population stability index of a feature, last window.", _FEATURE
)
KS_STATISTIC = _drift.gauge(
    "ks_statistic", "Kolmogorov-Smirnov distance of a feature, last window.", _FEATURE
)
KS_P_VALUE = _drift.gauge(
    "ks_p_value", "KS p-value of a feature (unadjusted), last window.", _FEATURE
)
JENSEN_SHANNON_DISTANCE = _drift.gauge(
    "jensen_shannon_distance",
    "Jensen-Shannon distance (base 2) of a feature, last window.",
    _FEATURE,
)
WASSERSTEIN_DISTANCE = _drift.gauge(
    "wasserstein_distance",
    "Wasserstein distance of a numeric feature in reference standard deviations, last window.",
    _FEATURE,
)
MODEL_FEATURE_DRIFT_DETECTED = _drift.gauge(
    "model_feature_drift_detected",
    "1 when the feature drifted (window test or sequential alarm).",
    _FEATURE,
)
MODEL_FEATURE_DRIFT_SEVERITY = _drift.gauge(
    "model_feature_drift_severity", "Drift severity of the feature, 0 NONE .. 4 CRITICAL.", _FEATURE
)
MODEL_DRIFT_SIGNALS = _drift.counter(
    "model_drift_signals",
    "Drift signals published, by kind, test and severity.",
    (*_MODEL, "kind", "test", "severity"),
)
MODEL_DRIFT_WINDOWS = _drift.counter(
    "model_drift_windows", "Drift windows evaluated.", _MODEL_VERSION
)
MODEL_DRIFT_WARMUP_DROPPED = _drift.counter(
    "model_drift_warmup_dropped",
    "Warm-up predictions never tested: the warm-up buffer was full while the "
    "worker's partitions caught up on a backlog (the latest by event time go).",
    _MODEL_VERSION,
)
MODEL_DRIFT_CONCEPT_UNUSED = _drift.counter(
    "model_drift_concept_unused",
    "Labels and predictions the concept-drift path could not use, by reason: orphan (a "
    "label whose prediction did not join within the grace), label_overflow (too many "
    "labels waiting), pending_evicted (a prediction evicted before its label), "
    "backlog_dropped (a joined label dropped before its version's monitor existed).",
    ("reason",),
)
MODEL_DRIFT_REFERENCE_INFO = _drift.gauge(
    "model_drift_reference_info",
    "1 for the reference a model version is tested against.",
    (*_MODEL_VERSION, "reference_id"),
)

# -- experiments --------------------------------------------------------------
EXPERIMENT_EVENTS = _experiments.counter(
    "experiment_events",
    "Exposure and outcome events by bookkeeping outcome (new, duplicate, ...).",
    ("outcome",),
)
EXPERIMENT_ARM_UNITS = _experiments.gauge(
    "experiment_arm_units", "Unique units exposed per arm.", _ARM
)
EXPERIMENT_ARM_METRIC_MEAN = _experiments.gauge(
    "experiment_arm_metric_mean", "Primary metric mean per arm.", _ARM_METRIC
)
EXPERIMENT_ARM_RELATIVE_LIFT = _experiments.gauge(
    "experiment_arm_relative_lift", "Relative lift vs the control.", _ARM_METRIC
)
EXPERIMENT_ARM_ALWAYS_VALID_P_VALUE = _experiments.gauge(
    "experiment_arm_always_valid_p_value",
    "Always-valid (mSPRT) p-value vs the control.",
    _ARM_METRIC,
)
EXPERIMENT_ARM_CHANCE_TO_BEAT_CONTROL = _experiments.gauge(
    "experiment_arm_chance_to_beat_control",
    "Posterior probability the arm beats the control.",
    _ARM_METRIC,
)
EXPERIMENT_ARM_WEIGHT = _experiments.gauge(
    "experiment_arm_weight", "Traffic weight routed to the arm.", _ARM
)
EXPERIMENT_SRM_P_VALUE = _experiments.gauge(
    "experiment_srm_p_value", "Sample-ratio-mismatch chi-square p-value.", _EXPERIMENT
)
EXPERIMENT_SRM_DETECTED = _experiments.gauge(
    "experiment_srm_detected", "1 while the SRM check fires (p < 0.001).", _EXPERIMENT
)
EXPERIMENT_ANALYSES = _experiments.counter(
    "experiment_analyses", "Analyses published.", (*_EXPERIMENT, "recommendation")
)

# -- controller ---------------------------------------------------------------
MODELGUARD_CONTROLLER_DECISIONS = _controller.counter(
    "modelguard_controller_decisions",
    "Routing decisions taken, by model, action and whether it was a dry run.",
    (*_MODEL, "action", "dry_run"),
)
MODELGUARD_CONTROLLER_LEADER = _controller.gauge(
    "modelguard_controller_leader", "1 while this replica holds the controller lease.", ("replica",)
)
MODELGUARD_CONTROLLER_VERDICT = _controller.gauge(
    "modelguard_controller_verdict",
    "Latest verdict per version: 1 for the current status, 0 for the others.",
    (*_MODEL_VERSION, "status"),
)
MODELGUARD_ROUTING_WEIGHT = _controller.gauge(
    "modelguard_routing_weight",
    "Traffic weight of a version in the routing table, as last read.",
    _MODEL_VERSION,
)
MODELGUARD_CONTROLLER_OPEN_INCIDENTS = _controller.gauge(
    "modelguard_controller_open_incidents", "Incidents currently open per model.", _MODEL
)
MODELGUARD_CONTROLLER_CAS_CONFLICTS = _controller.counter(
    "modelguard_controller_cas_conflicts",
    "Compare-and-set conflicts on the routing table (another writer went first).",
    _MODEL,
)
MODELGUARD_CONTROLLER_LATE_PARTIALS = _controller.counter(
    "modelguard_controller_late_partials",
    "Partial metric windows that arrived after their window had been merged (grace or "
    "timeout ran out) and were dropped.",
    _MODEL,
)
MODELGUARD_CONTROLLER_PENDING_PARTIAL_WINDOWS = _controller.gauge(
    "modelguard_controller_pending_partial_windows",
    "Windows waiting for the partials of other source partitions.",
    _MODEL,
)
MODELGUARD_CONTROLLER_APPLY_SECONDS = _controller.histogram(
    "modelguard_controller_apply_seconds",
    "Time from the start of an evaluation to the decision being applied and published.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# -- simulator ----------------------------------------------------------------
MODELGUARD_SIMULATOR_EVENTS = _simulator.counter(
    "modelguard_simulator_events",
    "Events published by the simulator, by event type.",
    ("event_type",),
)
MODELGUARD_SIMULATOR_SIMULATED_SECONDS = _simulator.gauge(
    "modelguard_simulator_simulated_seconds", "Simulated seconds elapsed in the current run."
)
