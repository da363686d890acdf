"""Scenario files of the traffic simulator (YAML, validated with pydantic).

A scenario says which models and versions serve traffic, how features, accuracy,
latency, errors and label delays are distributed, the initial routing weights, and which
incidents happen when (seconds from the start)::

    name: fraud-canary
    seed: 7
    duration_seconds: 300
    rate_per_second: 50
    models:
      - name: fraud
        experiment_id: fraud-v2-canary
        features:
          amount: {kind: lognormal, mean: 3.5, sigma: 0.8}
          country: {kind: categorical, values: {US: 0.6, DE: 0.3, FR: 0.1}}
        versions:
          v1: {accuracy: 0.92}
          v2: {accuracy: 0.93}
        weights: {v1: 0.9, v2: 0.1}
        labels: {fraction: 1.0, delay_seconds: {kind: exponential, mean: 20}}
    incidents:
      - {kind: accuracy_drop, model: fraud, version: v2, at: 60, accuracy: 0.6}
      - {kind: data_drift, model: fraud, feature: amount, at: 120, shift: 2.0}

>>> s = Scenario.model_validate({"name": "x", "models": [{"name": "m",
...     "features": {"f": {"kind": "normal", "mean": 0, "std": 1}},
...     "versions": {"v1": {}}, "weights": {"v1": 1.0}}]})
>>> s.models[0].versions["v1"].accuracy
0.9
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from modelguard.contracts.base import Identifier, ModelName, Name, VersionName
from modelguard.core.routing import MAX_SLOTS, validate_weights
from modelguard.errors import ConfigError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- distributions ----------------------------------------------------------------------
class Normal(_Spec):
    kind: Literal["normal"]
    mean: float = 0.0
    std: float = Field(1.0, ge=0.0)


class Uniform(_Spec):
    kind: Literal["uniform"]
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class LogNormal(_Spec):
    """exp(N(mean, sigma)): positive and skewed (amounts, latencies)."""

    kind: Literal["lognormal"]
    mean: float = 0.0
    sigma: float = Field(1.0, ge=0.0)


class Exponential(_Spec):
    kind: Literal["exponential"]
    mean: float = Field(1.0, gt=0.0)


class Constant(_Spec):
    kind: Literal["constant"]
    value: float


class Categorical(_Spec):
    """String values with probabilities (normalized if they do not sum to 1)."""

    kind: Literal["categorical"]
    values: dict[Annotated[str, Field(min_length=1, max_length=256)], float] = Field(
        min_length=1, max_length=1000
    )

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if any(p < 0 for p in self.values.values()) or sum(self.values.values()) <= 0:
            raise ValueError("values need non-negative probabilities with a positive sum")
        return self


Numeric = Annotated[
    Normal | Uniform | LogNormal | Exponential | Constant, Field(discriminator="kind")
]
Distribution = Annotated[
    Normal | Uniform | LogNormal | Exponential | Constant | Categorical,
    Field(discriminator="kind"),
]


# -- models -----------------------------------------------------------------------------
class VersionSpec(_Spec):
    """How one version behaves: accuracy (classification) or noise (regression),
    latency in milliseconds, and the share of requests that fail."""

    accuracy: float = Field(0.9, ge=0.0, le=1.0)
    noise_std: float = Field(1.0, ge=0.0, description="Regression: prediction error std.")
    latency_ms: Numeric = LogNormal(kind="lognormal", mean=math.log(20.0), sigma=0.3)
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    error_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)] = (
        "internal_error"
    )


class LabelSpec(_Spec):
    """Which share of successful predictions gets a label, and after what delay."""

    fraction: float = Field(1.0, ge=0.0, le=1.0)
    delay_seconds: Numeric = Exponential(kind="exponential", mean=10.0)


class ModelSpec(_Spec):
    name: ModelName
    task: Literal["classification", "regression"] = "classification"
    classes: list[StrictInt | StrictStr] = Field(default=[0, 1], min_length=2, max_length=100)
    class_weights: list[float] | None = None
    target: Numeric = Normal(kind="normal", mean=0.0, std=1.0)
    features: dict[Name, Distribution] = Field(default_factory=dict, max_length=512)
    versions: dict[VersionName, VersionSpec] = Field(min_length=1, max_length=MAX_SLOTS)
    weights: dict[VersionName, float]
    traffic_share: float = Field(1.0, gt=0.0)
    experiment_id: Identifier | None = None
    outcome_metric: Name | None = Field(
        "correct", description="With an experiment: outcome emitted with each label (1/0)."
    )
    labels: LabelSpec = LabelSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            validate_weights(self.weights, known_versions=set(self.versions))
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if self.class_weights is not None:
            if len(self.class_weights) != len(self.classes):
                raise ValueError("class_weights must have one weight per class")
            if any(w < 0 for w in self.class_weights) or sum(self.class_weights) <= 0:
                raise ValueError("class_weights need non-negative values with a positive sum")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        return self


# -- incidents --------------------------------------------------------------------------
class _Incident(_Spec):
    model: ModelName
    at: float = Field(ge=0.0, description="Seconds from the start of the run.")
    until: float | None = Field(None, description="End (seconds from start); None: never.")

    def active(self, t: float) -> bool:
        return self.at <= t and (self.until is None or t < self.until)


class AccuracyDrop(_Incident):
    """A version (e.g. a bad challenger) becomes wrong more often."""

    kind: Literal["accuracy_drop"]
    version: VersionName
    accuracy: float = Field(ge=0.0, le=1.0)


class DataDrift(_Incident):
    """A feature's distribution changes: numeric ``x * scale + shift``, or a new
    categorical distribution (``values``), or a new distribution altogether."""

    kind: Literal["data_drift"]
    feature: Name
    shift: float = 0.0
    scale: float = 1.0
    values: dict[str, float] | None = None
    distribution: Distribution | None = None


class ConceptDrift(_Incident):
    """The world changes under every version: accuracy multiplied by
    ``accuracy_factor`` (and class frequencies replaced by ``class_weights``)."""

    kind: Literal["concept_drift"]
    accuracy_factor: float = Field(0.7, ge=0.0, le=1.0)
    class_weights: list[float] | None = None


class LatencySpike(_Incident):
    kind: Literal["latency_spike"]
    version: VersionName | None = None
    factor: float = Field(5.0, gt=0.0)


class ErrorBurst(_Incident):
    kind: Literal["error_burst"]
    version: VersionName | None = None
    error_rate: float = Field(0.5, ge=0.0, le=1.0)
    error_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)] = (
        "internal_error"
    )


class ExposureLoss(_Incident):
    """A logging bug: a share of one version's exposures is lost (the unit is served
    and its outcomes are logged, but its exposure never reaches Kafka), which is what
    the experiments' sample-ratio-mismatch check must flag."""

    kind: Literal["exposure_loss"]
    version: VersionName
    fraction: float = Field(ge=0.0, le=1.0)


Incident = Annotated[
    AccuracyDrop | DataDrift | ConceptDrift | LatencySpike | ErrorBurst | ExposureLoss,
    Field(discriminator="kind"),
]


class Scenario(_Spec):
    """A whole simulated run; ``seed`` makes it reproducible."""

    name: Identifier
    seed: int = 0
    start_time: AwareDatetime | None = None
    duration_seconds: float = Field(60.0, gt=0.0)
    rate_per_second: float = Field(100.0, gt=0.0, le=1_000_000.0)
    tick_seconds: float = Field(1.0, gt=0.0, le=3600.0)
    units: int = Field(10_000, ge=1)
    models: list[ModelSpec] = Field(min_length=1, max_length=100)
    incidents: list[Incident] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _references(self) -> Self:
        models = {m.name: m for m in self.models}
        if len(models) != len(self.models):
            raise ValueError("model names must be distinct")
        for i, inc in enumerate(self.incidents):
            where = f"incidents[{i}] ({inc.kind})"
            model = models.get(inc.model)
            if model is None:
                raise ValueError(f"{where}: unknown model {inc.model!r}")
            version = getattr(inc, "version", None)
            if version is not None and version not in model.versions:
                raise ValueError(f"{where}: model {inc.model!r} has no version {version!r}")
            if isinstance(inc, DataDrift):
                if inc.feature not in model.features:
                    raise ValueError(f"{where}: model {inc.model!r} has no feature {inc.feature!r}")
                categorical = isinstance(model.features[inc.feature], Categorical)
                if categorical and (inc.shift != 0.0 or inc.scale != 1.0):
                    raise ValueError(f"{where}: shift/scale need a numeric feature")
                if not categorical and inc.values is not None:
                    raise ValueError(f"{where}: values need a categorical feature")
            if (
                isinstance(inc, ConceptDrift)
                and inc.class_weights is not None
                and len(inc.class_weights) != len(model.classes)
            ):
                raise ValueError(f"{where}: class_weights needs one weight per class")
            if inc.until is not None and inc.until <= inc.at:
                raise ValueError(f"{where}: until must be after at")
        return self

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


class ScenarioError(ConfigError):
    """A scenario file that cannot be used; the message names the file and field."""


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse YAML (or JSON) text into a :class:`Scenario`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_url=False, include_input=False)[:5]:
            loc = ".".join(str(p) for p in err["loc"]) or "<scenario>"
            parts.append(f"{loc}: {err['msg']}")
        raise ScenarioError(f"{source}: " + "; ".join(parts)) from None
