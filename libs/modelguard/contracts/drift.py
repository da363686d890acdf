"""Output of the drift processor: one test on one feature (or the dataset) for one window."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelguard.contracts.base import Event, EventTime, Identifier, ModelName, Name, VersionName
from modelguard.contracts.common import Severity


class DriftSignal(Event):
    """Result of one drift test on one feature (or the whole dataset) for one window.

    ``feature`` is None for dataset-level, prediction and concept signals.
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
    effect_size: float | None = None
    threshold: float | None = None
    drift_detected: bool
    severity: Severity
    window_start: EventTime
    window_end: EventTime
    n_reference: int = Field(ge=0)
    n_current: int = Field(ge=0)
    reference_version: Identifier | None = None
