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


# -- sdk ----------------------------------------------------------------------
MODELGUARD_SDK_EVENTS = _family(
    "modelguard_sdk_events",
    "counter",
    "Events accepted into the SDK's send buffer, by event type.",
    ("event_type",),
    exporter="sdk",
)
MODELGUARD_SDK_DROPPED = _family(
    "modelguard_sdk_dropped",
    "counter",
    "Events dropped before sending (buffer full), by event type.",
    ("event_type", "reason"),
    exporter="sdk",
)
MODELGUARD_SDK_DELIVERY_FAILURES = _family(
    "modelguard_sdk_delivery_failures",
    "counter",
    "Events the broker did not acknowledge (e.g. timed out), by topic and error.",
    ("topic", "error"),
    exporter="sdk",
)
MODELGUARD_SDK_INVALID_CALLS = _family(
    "modelguard_sdk_invalid_calls",
    "counter",
    "SDK calls rejected for invalid arguments, by event type.",
    ("event_type",),
    exporter="sdk",
)
MODELGUARD_SDK_BUFFERED_MESSAGES = _family(
    "modelguard_sdk_buffered_messages",
    "gauge",
    "Messages waiting in the SDK's send buffer.",
    exporter="sdk",
)
MODELGUARD_SDK_INFERENCE_DURATION_SECONDS = _family(
    "modelguard_sdk_inference_duration_seconds",
    "histogram",
    (
        "Time spent serving a prediction, by stage, as timed in this model server "
        "(sdk.timer / sdk.timed); the fleet-wide view is model_inference_duration_seconds."
    ),
    ("model_name", "model_version", "stage"),
    buckets=DURATION_BUCKETS,
    exporter="sdk",
)

# -- routing ------------------------------------------------------------------
MODELGUARD_ROUTING_TABLE_REVISION = _family(
    "modelguard_routing_table_revision",
    "gauge",
    "Revision of the routing table in use, per model.",
    ("model_name",),
    exporter="routing-client",
)
MODELGUARD_ROUTING_TABLE_UPDATES = _family(
    "modelguard_routing_table_updates",
    "counter",
    "Routing tables applied by the client, per model.",
    ("model_name",),
    exporter="routing-client",
)
MODELGUARD_ROUTING_REDIS_ERRORS = _family(
    "modelguard_routing_redis_errors",
    "counter",
    "Failed Redis operations of the routing client (listen, load, decode).",
    ("operation",),
    exporter="routing-client",
)
MODELGUARD_ROUTING_REDIS_CONNECTED = _family(
    "modelguard_routing_redis_connected",
    "gauge",
    "1 while the routing client's change subscription is up.",
    exporter="routing-client",
)
MODELGUARD_ROUTING_PROPAGATION_SECONDS = _family(
    "modelguard_routing_propagation_seconds",
    "histogram",
    "Time from a table's write (updated_at) to its use by this client.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
    exporter="routing-client",
)
MODELGUARD_ROUTING_STALE_ASSIGNMENTS = _family(
    "modelguard_routing_stale_assignments",
    "counter",
    "Assignments served from the last known good table while Redis was unreachable.",
    exporter="routing-client",
)

MODELGUARD_ROUTING_TABLES_REFUSED = _family(
    "modelguard_routing_tables_refused",
    "counter",
    "Routing tables not applied because they name an unregistered version.",
    ("model_name",),
    exporter="routing-client",
)

# -- ingest -------------------------------------------------------------------
MODELGUARD_EVENTS_CONSUMED = _family(
    "modelguard_events_consumed",
    "counter",
    "Events consumed, by topic and validation outcome (valid/invalid).",
    ("service", "topic", "outcome"),
    exporter="every consumer",
)
MODELGUARD_DEAD_LETTERS = _family(
    "modelguard_dead_letters",
    "counter",
    "Events sent to the dead-letter topic, by source topic and error kind.",
    ("service", "source_topic", "error_kind"),
    exporter="every consumer",
)
MODELGUARD_CONSUMER_ERRORS = _family(
    "modelguard_consumer_errors",
    "counter",
    "Errors reported by the Kafka consumer (not per message).",
    ("service", "code"),
    exporter="every consumer",
)


# -- every service ------------------------------------------------------------
MODELGUARD_DEPENDENCY_UP = _family(
    "modelguard_dependency_up",
    "gauge",
    "1 while the service reaches the dependency, 0 during an outage.",
    ("dependency",),
    exporter="every service",
)

# -- metrics ------------------------------------------------------------------
MODEL_ACCURACY = _family(
    "model_accuracy",
    "gauge",
    "Accuracy over the last N labelled predictions.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_PRECISION = _family(
    "model_precision",
    "gauge",
    "Precision (binary, else macro) over the last N labels.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_RECALL = _family(
    "model_recall",
    "gauge",
    "Recall (binary, else macro) over the last N labels.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_F1_SCORE = _family(
    "model_f1_score",
    "gauge",
    "F1 score (binary, else macro) over the last N labels.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_F1_MACRO_SCORE = _family(
    "model_f1_macro_score",
    "gauge",
    "Macro F1 over the last N labels.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_ROC_AUC = _family(
    "model_roc_auc",
    "gauge",
    "ROC-AUC over the last N labels (with probabilities).",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_LOG_LOSS = _family(
    "model_log_loss",
    "gauge",
    "Log-loss over the last N labels (with probabilities).",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_BRIER_SCORE = _family(
    "model_brier_score",
    "gauge",
    "Brier score over the last N labels.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_MAE = _family(
    "model_mae",
    "gauge",
    "Mean absolute error over the last N labels (regression).",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_RMSE = _family(
    "model_rmse",
    "gauge",
    "Root mean squared error over the last N labels (regression).",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_MAPE = _family(
    "model_mape",
    "gauge",
    "Mean absolute percentage error, last N labels (regression).",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_VERSION_ACCURACY_DROP_PERCENT = _family(
    "model_version_accuracy_drop_percent",
    "gauge",
    "Accuracy drop of a version against the model's baseline, percent of baseline.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_ACCURACY_DROP_PERCENT = _family(
    "model_accuracy_drop_percent",
    "gauge",
    "Largest accuracy drop among a model's versions, percent of its baseline.",
    ("model_name",),
    exporter="metrics",
)
MODEL_ACCURACY_DEGRADED = _family(
    "model_accuracy_degraded",
    "gauge",
    (
        "1 when a version's last-N accuracy dropped significantly (one-sided z test) by at "
        "least the configured percentage below the model's baseline."
    ),
    ("model_name",),
    exporter="metrics",
)
MODEL_ACCURACY_TREND = _family(
    "model_accuracy_trend",
    "gauge",
    "Accuracy of the last closed window minus the previous one, per window.",
    ("model_name", "model_version", "window"),
    exporter="metrics",
)
MODEL_LATENCY_QUANTILE_SECONDS = _family(
    "model_latency_quantile_seconds",
    "gauge",
    "Latency percentiles (p50/p95/p99) over the last closed window, per window.",
    ("model_name", "model_version", "window", "percentile"),
    exporter="metrics",
)
MODEL_LABEL_COVERAGE_RATIO = _family(
    "model_label_coverage_ratio",
    "gauge",
    (
        "Share of resolved predictions (labelled or expired without a label) that got a label, "
        "in the latest closed event-time window of the finest length."
    ),
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_LABEL_DELAY_SECONDS = _family(
    "model_label_delay_seconds",
    "gauge",
    "Label delay percentiles (label time minus prediction time), since start.",
    ("model_name", "model_version", "percentile"),
    exporter="metrics",
)
MODEL_PREDICTIONS = _family(
    "model_predictions",
    "counter",
    "Predictions served, by model version and predicted class.",
    ("model_name", "model_version", "predicted_class"),
    exporter="metrics",
)
MODEL_PREDICTION_ERRORS = _family(
    "model_prediction_errors",
    "counter",
    "Failed predictions, by model version and error type.",
    ("model_name", "model_version", "error_type"),
    exporter="metrics",
)
MODEL_LABELS_JOINED = _family(
    "model_labels_joined",
    "counter",
    "Predictions joined with their label.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_CORRECT_PREDICTIONS = _family(
    "model_correct_predictions",
    "counter",
    "Labelled predictions that were right.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_LABELS_EXPIRED = _family(
    "model_labels_expired",
    "counter",
    "Predictions whose label did not arrive within the label TTL.",
    ("model_name", "model_version"),
    exporter="metrics",
)
MODEL_INFERENCE_DURATION_SECONDS = _family(
    "model_inference_duration_seconds",
    "histogram",
    "Serving latency by stage (total = whole request).",
    ("model_name", "model_version", "stage"),
    buckets=DURATION_BUCKETS,
    exporter="metrics",
)
MODEL_ORPHAN_LABELS = _family(
    "model_orphan_labels",
    "counter",
    "Labels whose prediction never arrived within the grace period (model from the label).",
    ("model_name",),
    exporter="metrics",
)
MODELGUARD_METRICS_LATE_EVENTS = _family(
    "modelguard_metrics_late_events",
    "counter",
    "Events (or expiries) for an already closed window, left out of that window.",
    ("kind",),
    exporter="metrics",
)
MODELGUARD_METRICS_DUPLICATE_EVENTS = _family(
    "modelguard_metrics_duplicate_events",
    "counter",
    "Predictions or labels seen again (same prediction id), not counted twice.",
    ("kind",),
    exporter="metrics",
)
MODELGUARD_METRICS_REJECTED_LABELS = _family(
    "modelguard_metrics_rejected_labels",
    "counter",
    "Labels that could not be used, by reason.",
    ("reason",),
    exporter="metrics",
)
MODELGUARD_METRICS_WATERMARK_SECONDS = _family(
    "modelguard_metrics_watermark_seconds",
    "gauge",
    "Event-time watermark per partition (Unix seconds).",
    ("partition",),
    exporter="metrics",
)
MODELGUARD_METRICS_PENDING_PREDICTIONS = _family(
    "modelguard_metrics_pending_predictions",
    "gauge",
    "Predictions waiting for their label, per partition.",
    ("partition",),
    exporter="metrics",
)

MODELGUARD_METRICS_CLAMPED_EVENTS = _family(
    "modelguard_metrics_clamped_events",
    "counter",
    (
        "Events dated further ahead of their arrival (broker) time than the tolerance, "
        "counted at arrival time plus the tolerance."
    ),
    ("kind",),
    exporter="metrics",
)
MODELGUARD_METRICS_EVICTED = _family(
    "modelguard_metrics_evicted",
    "counter",
    (
        "Entries evicted by a memory bound (prediction: expired early; label: counted "
        "orphan; id: forgotten for deduplication)."
    ),
    ("kind",),
    exporter="metrics",
)
# -- validator ----------------------------------------------------------------
MODELGUARD_VALIDATED_PREDICTIONS = _family(
    "modelguard_validated_predictions",
    "counter",
    "Valid predictions seen by the edge validator, by version and predicted class.",
    ("model_name", "model_version", "predicted_class"),
    exporter="validator",
)
MODELGUARD_VALIDATED_PREDICTION_ERRORS = _family(
    "modelguard_validated_prediction_errors",
    "counter",
    "Failed requests seen by the edge validator, by version and error type.",
    ("model_name", "model_version", "error_type"),
    exporter="validator",
)

MODELGUARD_VALIDATED_DUPLICATES = _family(
    "modelguard_validated_duplicates",
    "counter",
    "Predictions whose id the edge validator had seen already (counted once).",
    exporter="validator",
)
# -- drift --------------------------------------------------------------------
MODEL_DATA_DRIFT_DETECTED = _family(
    "model_data_drift_detected",
    "gauge",
    (
        "1 when the model version's data drifted (dataset share above the threshold, or a "
        "sequential alarm in the current window)."
    ),
    ("model_name", "model_version"),
    exporter="drift",
)
MODEL_DRIFTED_COLUMNS_RATIO = _family(
    "model_drifted_columns_ratio",
    "gauge",
    "Share of features that drifted in the last closed window.",
    ("model_name", "model_version"),
    exporter="drift",
)
MODEL_CONCEPT_DRIFT_DETECTED = _family(
    "model_concept_drift_detected",
    "gauge",
    "1 when the error rate rose above its baseline (ADWIN alarm), until it is back.",
    ("model_name", "model_version"),
    exporter="drift",
)
PSI_SCORE = _family(
    "psi_score",
    "gauge",
    "Population stability index of a feature, last window.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
KS_STATISTIC = _family(
    "ks_statistic",
    "gauge",
    "Kolmogorov-Smirnov distance of a feature, last window.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
KS_P_VALUE = _family(
    "ks_p_value",
    "gauge",
    "KS p-value of a feature (unadjusted), last window.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
JENSEN_SHANNON_DISTANCE = _family(
    "jensen_shannon_distance",
    "gauge",
    "Jensen-Shannon distance (base 2) of a feature, last window.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
WASSERSTEIN_DISTANCE = _family(
    "wasserstein_distance",
    "gauge",
    "Wasserstein distance of a numeric feature in reference standard deviations, last window.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
MODEL_FEATURE_DRIFT_DETECTED = _family(
    "model_feature_drift_detected",
    "gauge",
    "1 when the feature drifted (window test or sequential alarm).",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
MODEL_FEATURE_DRIFT_SEVERITY = _family(
    "model_feature_drift_severity",
    "gauge",
    "Drift severity of the feature, 0 NONE .. 4 CRITICAL.",
    ("model_name", "model_version", "feature"),
    exporter="drift",
)
MODEL_DRIFT_SIGNALS = _family(
    "model_drift_signals",
    "counter",
    "Drift signals published, by kind, test and severity.",
    ("model_name", "kind", "test", "severity"),
    exporter="drift",
)
MODEL_DRIFT_WINDOWS = _family(
    "model_drift_windows",
    "counter",
    "Drift windows evaluated.",
    ("model_name", "model_version"),
    exporter="drift",
)
MODEL_DRIFT_WARMUP_DROPPED = _family(
    "model_drift_warmup_dropped",
    "counter",
    (
        "Warm-up predictions never tested: the warm-up buffer was full while the "
        "worker's partitions caught up on a backlog (the latest by event time go)."
    ),
    ("model_name", "model_version"),
    exporter="drift",
)
MODEL_DRIFT_REFERENCE_INFO = _family(
    "model_drift_reference_info",
    "gauge",
    "1 for the reference a model version is tested against.",
    ("model_name", "model_version", "reference_id"),
    exporter="drift",
)

# -- experiments --------------------------------------------------------------
EXPERIMENT_EVENTS = _family(
    "experiment_events",
    "counter",
    "Exposure and outcome events by bookkeeping outcome (new, duplicate, ...).",
    ("outcome",),
    exporter="experiments",
)
EXPERIMENT_ARM_UNITS = _family(
    "experiment_arm_units",
    "gauge",
    "Unique units exposed per arm.",
    ("experiment_id", "model_name", "arm"),
    exporter="experiments",
)
EXPERIMENT_ARM_METRIC_MEAN = _family(
    "experiment_arm_metric_mean",
    "gauge",
    "Primary metric mean per arm.",
    ("experiment_id", "model_name", "arm", "metric"),
    exporter="experiments",
)
EXPERIMENT_ARM_RELATIVE_LIFT = _family(
    "experiment_arm_relative_lift",
    "gauge",
    "Relative lift vs the control.",
    ("experiment_id", "model_name", "arm", "metric"),
    exporter="experiments",
)
EXPERIMENT_ARM_ALWAYS_VALID_P_VALUE = _family(
    "experiment_arm_always_valid_p_value",
    "gauge",
    "Always-valid (mSPRT) p-value vs the control.",
    ("experiment_id", "model_name", "arm", "metric"),
    exporter="experiments",
)
EXPERIMENT_ARM_CHANCE_TO_BEAT_CONTROL = _family(
    "experiment_arm_chance_to_beat_control",
    "gauge",
    "Posterior probability the arm beats the control.",
    ("experiment_id", "model_name", "arm", "metric"),
    exporter="experiments",
)
EXPERIMENT_ARM_WEIGHT = _family(
    "experiment_arm_weight",
    "gauge",
    "Traffic weight routed to the arm.",
    ("experiment_id", "model_name", "arm"),
    exporter="experiments",
)
EXPERIMENT_SRM_P_VALUE = _family(
    "experiment_srm_p_value",
    "gauge",
    "Sample-ratio-mismatch chi-square p-value.",
    ("experiment_id", "model_name"),
    exporter="experiments",
)
EXPERIMENT_SRM_DETECTED = _family(
    "experiment_srm_detected",
    "gauge",
    "1 while the SRM check fires (p < 0.001).",
    ("experiment_id", "model_name"),
    exporter="experiments",
)
EXPERIMENT_ANALYSES = _family(
    "experiment_analyses",
    "counter",
    "Analyses published.",
    ("experiment_id", "model_name", "recommendation"),
    exporter="experiments",
)

# -- controller ---------------------------------------------------------------
MODELGUARD_CONTROLLER_DECISIONS = _family(
    "modelguard_controller_decisions",
    "counter",
    "Routing decisions taken, by model, action and whether it was a dry run.",
    ("model_name", "action", "dry_run"),
    exporter="controller",
)
MODELGUARD_CONTROLLER_LEADER = _family(
    "modelguard_controller_leader",
    "gauge",
    "1 while this replica holds the controller lease.",
    ("replica",),
    exporter="controller",
)
MODELGUARD_CONTROLLER_VERDICT = _family(
    "modelguard_controller_verdict",
    "gauge",
    "Latest verdict per version: 1 for the current status, 0 for the others.",
    ("model_name", "model_version", "status"),
    exporter="controller",
)
MODELGUARD_ROUTING_WEIGHT = _family(
    "modelguard_routing_weight",
    "gauge",
    "Traffic weight of a version in the routing table, as last read.",
    ("model_name", "model_version"),
    exporter="controller",
)
MODELGUARD_CONTROLLER_OPEN_INCIDENTS = _family(
    "modelguard_controller_open_incidents",
    "gauge",
    "Incidents currently open per model.",
    ("model_name",),
    exporter="controller",
)
MODELGUARD_CONTROLLER_CAS_CONFLICTS = _family(
    "modelguard_controller_cas_conflicts",
    "counter",
    "Compare-and-set conflicts on the routing table (another writer went first).",
    ("model_name",),
    exporter="controller",
)
MODELGUARD_CONTROLLER_LATE_PARTIALS = _family(
    "modelguard_controller_late_partials",
    "counter",
    (
        "Partial metric windows that arrived after their window had been merged (grace or "
        "timeout ran out) and were dropped."
    ),
    ("model_name",),
    exporter="controller",
)
MODELGUARD_CONTROLLER_PENDING_PARTIAL_WINDOWS = _family(
    "modelguard_controller_pending_partial_windows",
    "gauge",
    "Windows waiting for the partials of other source partitions.",
    ("model_name",),
    exporter="controller",
)
MODELGUARD_CONTROLLER_APPLY_SECONDS = _family(
    "modelguard_controller_apply_seconds",
    "histogram",
    "Time from the start of an evaluation to the decision being applied and published.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    exporter="controller",
)

# -- simulator ----------------------------------------------------------------
MODELGUARD_SIMULATOR_EVENTS = _family(
    "modelguard_simulator_events",
    "counter",
    "Events published by the simulator, by event type.",
    ("event_type",),
    exporter="simulator",
)
MODELGUARD_SIMULATOR_SIMULATED_SECONDS = _family(
    "modelguard_simulator_simulated_seconds",
    "gauge",
    "Simulated seconds elapsed in the current run.",
    exporter="simulator",
)
