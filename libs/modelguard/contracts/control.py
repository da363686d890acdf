"""Control-plane events: processor results read by the rollback controller, and its decisions."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from modelguard.contracts.base import (
    BoundedStr,
    Event,
    EventTime,
    Identifier,
    ModelName,
    Name,
    VersionName,
)

JsonScalar = StrictBool | StrictInt | StrictFloat | BoundedStr | None
Weight = Annotated[float, Field(ge=0.0, le=1.0)]


class Severity(IntEnum):
    """Ordered drift/incident severity; compare with ``>=``."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class WindowSpec(Event):
    """How a window is defined: event-time tumbling/hopping by seconds, or last-N by count."""

    schema_name = "window_spec"

    kind: Literal["tumbling", "hopping", "count"]
    length_seconds: float | None = Field(default=None, gt=0)
    count: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "count" and self.count is None:
            raise ValueError("a count window needs count")
        if self.kind != "count" and self.length_seconds is None:
            raise ValueError(f"a {self.kind} window needs length_seconds")
        return self


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


class RoutingDecision(Event):
    """A change (or refusal to change) of a model's traffic weights, with its evidence.

    Every write to the routing table is mirrored by one of these on the decisions topic
    so any routing state can be explained and replayed.
    """

    schema_name = "routing_decision"

    decision_id: Identifier
    incident_id: Identifier | None = None
    model: ModelName
    action: Literal[
        "rollback",
        "promote",
        "ramp",
        "hold",
        "freeze",
        "unfreeze",
        "set_weights",
        "alert",
        "retrain",
    ]
    reason: BoundedStr
    actor: BoundedStr = "controller"
    old_weights: dict[VersionName, Weight] = Field(default_factory=dict, max_length=64)
    new_weights: dict[VersionName, Weight] = Field(default_factory=dict, max_length=64)
    revision_before: int | None = Field(default=None, ge=0)
    revision_after: int | None = Field(default=None, ge=0)
    policy_hash: BoundedStr | None = None
    evidence: list[dict[Name, JsonScalar]] = Field(default_factory=list, max_length=256)
    dry_run: bool = False
    decided_at: EventTime
