"""Data-plane events published by model servers: predictions and their labels.

Both are keyed by ``prediction_id`` on topics with the same partition count, so the
label of a prediction lands on the same partition as the prediction (ADR 0002).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from modelguard.contracts.base import (
    BoundedStr,
    Event,
    Identifier,
    ModelName,
    Name,
    NonNegative,
    VersionName,
)
from modelguard.contracts.common import (
    BoundedEventTime,
    BoundedFloat,
    BoundedInt,
    ClassName,
    LaxBoundedFloat,
)
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.telemetry import Stage

#: A feature value: number (within ``±max_abs_number``), bounded string or missing (null).
FeatureValue = BoundedInt | BoundedFloat | BoundedStr | None
#: A prediction or label: a class (int, or string following the class rules) or a
#: number (regression), numbers within ``±max_abs_number``.
Target = BoundedInt | BoundedFloat | ClassName
ErrorType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

_PROBABILITY_SUM_TOLERANCE = 1e-3


class PredictionLogged(Event):
    """One prediction served by a model version.

    Bounds (``contracts.limits``): a class string has 1 to ``max_class_length``
    characters and no whitespace or control characters; numbers (prediction, label,
    score, features) are within ``±max_abs_number``; ``event_time`` is within
    ``[min_event_time, max_event_time)`` in UTC.

    ``prediction`` may be absent only when ``error_type`` says the request failed.
    ``probabilities`` maps class label (as string) to probability and must sum to 1;
    ``score`` is a free real-valued score (e.g. the positive-class margin).
    """

    schema_name = "prediction_logged"

    prediction_id: Identifier
    model: ModelName
    version: VersionName
    unit_id: Identifier = Field(description="Unit used for traffic assignment (user, session).")
    experiment_id: Identifier | None = None
    event_time: BoundedEventTime
    task: Literal["classification", "regression"] = "classification"
    features: dict[Name, FeatureValue] = Field(default_factory=dict, max_length=LIMITS.max_features)
    prediction: Target | None = None
    probabilities: dict[ClassName, Probability] | None = Field(
        default=None, max_length=LIMITS.max_classes
    )
    score: LaxBoundedFloat | None = None
    latency_ms: NonNegative = Field(le=3_600_000.0)
    stage_latency_ms: dict[Stage, NonNegative] | None = None
    error_type: ErrorType | None = None

    @field_validator("features")
    @classmethod
    def _finite_features(cls, value: dict[str, FeatureValue]) -> dict[str, FeatureValue]:
        for name, v in value.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"feature {name!r} is not a finite number")
        return value

    @field_validator("probabilities")
    @classmethod
    def _probabilities_sum_to_one(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and value:
            total = math.fsum(value.values())
            if abs(total - 1.0) > _PROBABILITY_SUM_TOLERANCE:
                raise ValueError(f"probabilities sum to {total:.6g}, expected 1")
        return value

    @model_validator(mode="after")
    def _prediction_or_error(self) -> Self:
        if self.prediction is None and self.error_type is None:
            raise ValueError("prediction is required unless error_type is set")
        if self.task == "regression" and isinstance(self.prediction, str):
            raise ValueError("a regression prediction must be a number")
        return self


class LabelObserved(Event):
    """The ground truth for a prediction, possibly arriving long after it.

    ``model`` is optional (the join is by ``prediction_id``) but lets a label whose
    prediction is never seen be attributed to a model in the orphan-label metric.
    """

    schema_name = "label_observed"

    prediction_id: Identifier
    model: ModelName | None = None
    label: Target
    event_time: BoundedEventTime
