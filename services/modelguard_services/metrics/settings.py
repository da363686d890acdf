"""Settings of the metrics processor (``MODELGUARD_METRICS_*`` environment variables)."""

from __future__ import annotations

import dataclasses

from pydantic import Field, model_validator

from modelguard.adapters.settings import CommonSettings
from modelguard.core.metrics import MetricsConfig

#: The processor's defaults (one home: ``MetricsConfig``); settings only bound them.
_DEFAULTS = MetricsConfig()


class MetricsSettings(CommonSettings):
    """Connection settings plus the processor's windows, TTLs and baselines.

    ``MODELGUARD_METRICS_BASELINES='{"fraud": 0.92}'`` declares baseline accuracies.
    """

    metrics_window_lengths_s: tuple[float, ...] = _DEFAULTS.window_lengths_s
    metrics_last_n: int = Field(default=_DEFAULTS.last_n, gt=0, le=100_000)
    metrics_label_ttl_s: float = Field(default=_DEFAULTS.label_ttl_s, gt=0)
    metrics_orphan_grace_s: float = Field(default=_DEFAULTS.orphan_grace_s, ge=0)
    metrics_allowed_lateness_s: float = Field(default=_DEFAULTS.allowed_lateness_s, ge=0)
    metrics_max_input_lag_s: float = Field(default=_DEFAULTS.max_input_lag_s, ge=0)
    metrics_baselines: dict[str, float] = Field(default_factory=dict)
    metrics_drift_drop_percent: float = Field(default=_DEFAULTS.drift_drop_percent, gt=0)
    metrics_checkpoint_interval_s: float = Field(default=1.0, gt=0)
    #: Largest share of the loop's time spent in checkpoints (the interval stretches).
    metrics_checkpoint_max_share: float = Field(default=0.05, gt=0, le=1)
    #: The stretched interval never exceeds this many times metrics_checkpoint_interval_s.
    metrics_checkpoint_max_factor: float = Field(default=10.0, ge=1)
    metrics_refresh_interval_s: float = Field(default=0.1, gt=0)
    #: Largest share of the loop's time spent refreshing the gauges' view (the interval
    #: stretches under load, up to metrics_refresh_max_interval_s).
    metrics_refresh_max_share: float = Field(default=0.03, gt=0, le=1)
    metrics_refresh_max_interval_s: float = Field(default=0.25, gt=0)
    #: Largest lead of event time over the broker timestamp (ADR 0011); further ahead
    #: is clamped and counted (modelguard_metrics_clamped_events_total).
    metrics_max_future_s: float = Field(default=_DEFAULTS.max_future_s, ge=0)
    #: Memory bounds per partition (ADR 0011 sizing); overflow evicts the oldest and
    #: counts it (modelguard_metrics_evicted_total).
    metrics_max_pending: int = Field(default=_DEFAULTS.max_pending, gt=0)
    metrics_max_orphans: int = Field(default=_DEFAULTS.max_orphans, gt=0)
    metrics_max_remembered: int = Field(default=_DEFAULTS.max_remembered, gt=0)
    #: Consumer group; empty: ``<topic_prefix>-metrics`` (``CommonSettings.consumer_group``).
    metrics_group_id: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")

    @model_validator(mode="after")
    def _default_group(self) -> MetricsSettings:
        if not self.metrics_group_id:
            self.metrics_group_id = self.consumer_group("metrics")
        return self

    def processor_config(self) -> MetricsConfig:
        """The processor's config: each ``MetricsConfig`` field that a ``metrics_<field>``
        setting names takes the setting; the others keep the core's default."""
        names = [f.name for f in dataclasses.fields(MetricsConfig)]
        values = {n: getattr(self, f"metrics_{n}") for n in names if f"metrics_{n}" in _FIELDS}
        return MetricsConfig(**{**values, "baselines": dict(self.metrics_baselines)})


_FIELDS = frozenset(MetricsSettings.model_fields)
