"""Output of the drift processor: one test on one feature (or the dataset) for one window."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelguard.contracts.base import Event, EventTime, Identifier, ModelName, Name, VersionName
from modelguard.contracts.common import Severity


class DriftSignal(Event):
    """Result of one drift test on one feature (or the whole dataset) for one window.

    Semantics (stable; the rollback controller relies on them):

    - ``kind``: ``data`` (one input feature), ``prediction`` (the model's outputs:
      ``feature`` is ``prediction`` or ``confidence``), ``quality`` (missing values,
      type errors, out-of-range values, unseen categories of a feature), ``dataset``
      (share of drifted features; ``feature`` None) and ``concept`` (the error stream
      once labels arrive; ``feature`` None).
    - ``test``: window tests ``ks``, ``chi_square``, ``drifted_share`` (sent every window,
      drifted or not, so a recovery is visible), ``missing_rate``, ``type_errors``,
      ``out_of_range``, ``unseen_categories``, ``confidence_collapse`` (sent when they
      fire); sequential alarms ``ks_window``, ``chi2_window``, ``cusum_mean_up|down``,
      ``cusum_scale_up|down`` and ``adwin`` (sent when they fire, at most once per
      feature and window).
    - ``drift_detected``: statistically significant (after the multiple-testing
      correction across the model's features, ``p_value_adjusted``) *and* a practical
      effect of at least LOW. ``severity`` is NONE whenever ``drift_detected`` is false.
    - ``effect_size``: PSI for ``ks``/``chi_square``; the rate increase for quality
      tests; the error-rate increase over the baseline for ``adwin``; the mean shift in
      reference sigma for ``cusum_*`` and ``ks_window``; the estimated PSI for
      ``chi2_window``; the drifted share for ``drifted_share``. Sequential alarms have no
      p-value: their ``threshold`` is calibrated so that P(false alarm within 10,000
      events) <= 5 % per model (ADR 0008).
    - ``reference_version``: id (content hash) of the reference tested against.
    - ``feature`` is None for dataset-level and concept signals.
    """

    schema_name = "drift_signal"

    event_id: Identifier
    model: ModelName
    version: VersionName | None = None
    kind: Literal["data", "prediction", "concept", "quality", "dataset"]
    feature: Name | None = None
    test: Name
    statistic: float
    p_value: float | None = Field(default=None, ge=0.0, le=1.0)
    p_value_adjusted: float | None = Field(default=None, ge=0.0, le=1.0)
    effect_size: float | None = None
    threshold: float | None = None
    drift_detected: bool
    severity: Severity
    window_start: EventTime
    window_end: EventTime
    n_reference: int = Field(ge=0)
    n_current: int = Field(ge=0)
    reference_version: Identifier | None = None
