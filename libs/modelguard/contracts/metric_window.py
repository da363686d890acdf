"""Output of the metrics processor: one closed window of one model version.

``metrics`` keys (present only when defined for the window):

* volume and errors: ``n_predictions``, ``n_errors``, ``error_rate``,
  ``error_rate.<error_type>``, ``class_share.<class>`` (predicted-class distribution,
  top 20 classes; a class not safe in a metric key, which the contract's class rules
  exclude, is written as ``<sanitised>~<hash>``);
* latency (of served predictions, milliseconds): ``latency_p50_ms``,
  ``latency_p95_ms``, ``latency_p99_ms``, ``latency_mean_ms``;
* labels: ``n_labelled``, ``label_coverage`` (labelled / (labelled + expired without a
  label)), ``label_delay_p50_s``, ``label_delay_p95_s``;
* classification: ``accuracy``, ``precision``, ``recall``, ``f1`` (binary for a
  ``0/1`` or ``false/true`` problem, else macro), ``f1_macro``; with probabilities
  ``auc``, ``log_loss``, ``brier``;
* regression: ``mae``, ``rmse``, ``mape``;
* comparison: ``baseline_accuracy``, ``accuracy_drop_percent`` (``(baseline -
  accuracy) / baseline * 100``; negative when better), ``accuracy_degraded`` (1.0 when
  the drop is at least the configured percentage and significant, a one-sided z test
  against the baseline; exposed as ``model_accuracy_degraded``; concept drift proper,
  ``model_concept_drift_detected``, belongs to the drift processor), ``accuracy_trend``
  (accuracy minus that of the previous window of the same kind).

Event-time windows (``tumbling``) count a prediction at its ``event_time`` and a
labelled pair at ``max(prediction time, label time)``. ``count`` windows are the last
N labelled predictions, emitted every N new labels (their ``n_predictions`` is the
number of labelled pairs; they depend on arrival order, so a replay after a crash may
publish a different result under the same ``event_id``, while event-time windows are
reproduced exactly). A window is computed per source partition (``partitions``
names it): ``aggregate`` carries the mergeable state, so a consumer merges partials
exactly with ``modelguard.core.metrics.merge_window_events``.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from modelguard.contracts.base import Event, EventTime, Identifier, ModelName, Name, VersionName
from modelguard.contracts.common import WindowSpec


class MetricWindowClosed(Event):
    """Metrics of one model version over one closed window.

    ``event_id`` is deterministic (model, version, window, start, partitions) so a
    replayed window is recognised downstream. ``partitions`` lists the source
    partitions merged into this result (empty: all of them).
    """

    schema_name = "metric_window_closed"

    event_id: Identifier
    model: ModelName
    version: VersionName
    window: WindowSpec
    window_start: EventTime
    window_end: EventTime
    partitions: list[int] = Field(default_factory=list, max_length=4096)
    n_predictions: int = Field(ge=0)
    n_labelled: int = Field(ge=0)
    n_errors: int = Field(ge=0)
    metrics: dict[Name, float] = Field(default_factory=dict, max_length=512)
    aggregate: dict[str, JsonValue] | None = Field(
        default=None,
        description="Mergeable state of the window (modelguard.core.metrics.Aggregate).",
    )
    emitted_at: EventTime
