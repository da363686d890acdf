"""Output of the metrics processor: one closed window of one model version."""

from __future__ import annotations

from pydantic import Field

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
    emitted_at: EventTime
