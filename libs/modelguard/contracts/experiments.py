"""Experiment contracts: exposures (a unit saw an arm), outcomes (what happened next),
the experiment specification kept by the registry, and the analysis events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from modelguard.contracts.base import (
    BoundedStr,
    Event,
    EventTime,
    Identifier,
    ModelName,
    Name,
    VersionName,
)
from modelguard.contracts.common import JsonScalar, Weight
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.redis_keys import Key, KeySpace


class ExposureLogged(Event):
    """A unit was assigned to (and served by) an arm of an experiment.

    ``event_id`` makes reprocessing idempotent; units are counted once per arm.
    """

    schema_name = "exposure_logged"

    event_id: Identifier
    experiment_id: Identifier
    unit_id: Identifier
    arm: VersionName
    model: ModelName
    event_time: EventTime


class OutcomeObserved(Event):
    """A metric value observed for a unit (binary success as 0/1, or a continuous value).

    ``pre_period_value`` carries an optional pre-experiment covariate (for CUPED).
    """

    schema_name = "outcome_observed"

    event_id: Identifier
    experiment_id: Identifier | None = None
    unit_id: Identifier
    metric: Name
    value: float
    pre_period_value: float | None = None
    event_time: EventTime
    model: ModelName | None = Field(default=None)


# ---------------------------------------------------------------------------------------
# Experiment registry: the specification the routing client and the processors read.
# ---------------------------------------------------------------------------------------

MetricKind = Literal["binary", "continuous"]
ExperimentStatus = Literal["draft", "running", "paused", "stopped"]
#: Experiment ids are Redis key parts and Prometheus label values: same rule as model names.
ExperimentId = ModelName


class RampStep(Event):
    """From ``after_seconds`` after the start, the treatments together get
    ``treatment_share`` of the traffic (split among them in the ratio of ``split``)."""

    schema_name = "experiment_ramp_step"

    after_seconds: float = Field(ge=0)
    treatment_share: Weight


class GuardrailMetric(Event):
    """A metric that must not degrade by more than ``max_relative_degradation``."""

    schema_name = "experiment_guardrail"

    metric: Name
    kind: MetricKind
    higher_is_better: bool = True
    max_relative_degradation: float = Field(default=0.05, ge=0, le=10)


class BanditConfig(Event):
    """Thompson-sampling allocation limits: every arm keeps ``min_share``; weights are
    rewritten at most once per ``min_update_interval_seconds`` and no weight moves by
    more than ``max_step`` in one update."""

    schema_name = "experiment_bandit"

    min_share: float = Field(default=0.05, ge=0, le=0.5)
    min_update_interval_seconds: float = Field(default=60.0, gt=0)
    max_step: float = Field(default=0.2, gt=0, le=1)
    draws: int = Field(default=20_000, ge=100, le=1_000_000)


class ExperimentSpec(Event):
    """One experiment: arms (a control and treatments, each a model version), traffic
    split, hashing salt, unit type, metrics, sample size, ramp and allocation.

    Stored in Redis by the registry (JSON, compare-and-set on ``revision``), read by the
    routing client (to assign units with ``salt``) and by the experiments processor.
    """

    schema_name = "experiment_spec"

    experiment_id: ExperimentId
    model: ModelName
    control: VersionName
    treatments: list[VersionName] = Field(min_length=1, max_length=15)
    split: dict[VersionName, Weight]
    salt: Annotated[str, StringConstraints(min_length=1, max_length=LIMITS.max_id_length)]
    unit_type: Literal["user", "session", "request", "device", "account"] = "user"
    primary_metric: Name
    primary_kind: MetricKind = "binary"
    higher_is_better: bool = True
    guardrails: list[GuardrailMetric] = Field(default_factory=list, max_length=16)
    min_sample_size: int = Field(default=1000, ge=1)
    planned_units_per_arm: int | None = Field(default=None, ge=1)
    #: Smallest relative lift of the primary metric worth detecting (0.05 = +5%); with
    #: ``baseline_mean`` (and ``baseline_sd`` for a continuous metric) the always-valid
    #: test's mixture is tuned to detect it by ``planned_units_per_arm`` and the
    #: analyses report the expected power.
    minimum_detectable_effect: float | None = Field(default=None, gt=0, le=10)
    baseline_mean: float | None = None
    baseline_sd: float | None = Field(default=None, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    allocation: Literal["fixed", "bandit"] = "fixed"
    bandit: BanditConfig | None = None
    ramp: list[RampStep] = Field(default_factory=list, max_length=32)
    status: ExperimentStatus = "draft"
    revision: int = Field(default=0, ge=0)
    started_at: EventTime | None = None
    updated_at: EventTime
    description: BoundedStr = ""

    @property
    def arms(self) -> list[str]:
        """Control first, then the treatments in order."""
        return [self.control, *self.treatments]

    @property
    def tuning_units(self) -> int:
        """Units per arm at which the always-valid confidence sequence is tightest."""
        return self.planned_units_per_arm or max(self.min_sample_size, 1000)

    @property
    def standardized_mde(self) -> float | None:
        """The minimum detectable effect in unit standard deviations (None if unplanned)."""
        if self.minimum_detectable_effect is None or self.baseline_mean is None:
            return None
        if self.primary_kind == "binary":
            sd = math.sqrt(self.baseline_mean * (1.0 - self.baseline_mean))
        else:
            sd = self.baseline_sd or 0.0
        if sd <= 0:
            return None
        return self.minimum_detectable_effect * abs(self.baseline_mean) / sd

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        arms = self.arms
        if self.minimum_detectable_effect is not None:
            if self.baseline_mean is None or self.baseline_mean == 0:
                raise ValueError("minimum_detectable_effect needs a non-zero baseline_mean")
            if self.primary_kind == "binary" and not 0 < self.baseline_mean < 1:
                raise ValueError("a binary metric's baseline_mean must be a rate in (0, 1)")
            if self.primary_kind == "continuous" and self.baseline_sd is None:
                raise ValueError(
                    "minimum_detectable_effect of a continuous metric needs baseline_sd"
                )
        if len(set(arms)) != len(arms):
            raise ValueError(f"arms must be distinct: control and treatments are {arms}")
        if set(self.split) != set(arms):
            raise ValueError(
                f"split must name exactly the arms {sorted(arms)}, got {sorted(self.split)}"
            )
        total = sum(self.split.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split weights must sum to 1, got {total:.6g}")
        if self.allocation == "bandit" and self.bandit is None:
            raise ValueError("allocation 'bandit' needs a bandit config")
        if self.allocation == "bandit" and self.ramp:
            raise ValueError("a bandit experiment cannot have a ramp schedule")
        if self.bandit is not None and self.bandit.min_share * len(arms) > 1.0:
            raise ValueError(
                f"bandit.min_share {self.bandit.min_share} times {len(arms)} arms exceeds 1"
            )
        steps = [s.after_seconds for s in self.ramp]
        if steps != sorted(steps) or len(set(steps)) != len(steps):
            raise ValueError("ramp steps must have strictly increasing after_seconds")
        guard_names = [g.metric for g in self.guardrails]
        if len(set(guard_names)) != len(guard_names) or self.primary_metric in guard_names:
            raise ValueError("guardrail metrics must be distinct and differ from the primary")
        if self.status != "draft" and self.started_at is None:
            raise ValueError(f"a {self.status} experiment needs started_at")
        return self


# ---------------------------------------------------------------------------------------
# Analysis results: one event per experiment and analysis round, for the controller.
# ---------------------------------------------------------------------------------------


class ArmAnalysis(Event):
    """Primary-metric results of one arm; differences are arm minus control."""

    schema_name = "experiment_arm_analysis"

    arm: VersionName
    is_control: bool
    units: int = Field(ge=0)
    mean: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    relative_lift: float | None = None
    relative_ci_low: float | None = None
    relative_ci_high: float | None = None
    p_value: float | None = Field(default=None, ge=0, le=1)
    always_valid_p: float | None = Field(default=None, ge=0, le=1)
    holm_p: float | None = Field(default=None, ge=0, le=1)
    cs_low: float | None = None
    cs_high: float | None = None
    chance_to_beat_control: float | None = Field(default=None, ge=0, le=1)
    expected_loss: float | None = Field(default=None, ge=0)
    cuped: bool = False
    verdict: Literal["control", "better", "worse", "inconclusive"] = "inconclusive"


class GuardrailResult(Event):
    schema_name = "experiment_guardrail_result"

    metric: Name
    arm: VersionName
    relative_change: float | None = None
    always_valid_p: float | None = Field(default=None, ge=0, le=1)
    breached: bool


class ExperimentAnalysis(Event):
    """What the experiments processor concludes, with the evidence.

    ``recommendation``: ``promote`` (``winner`` beat the control on the always-valid test
    after Holm correction, minimum sample reached, no guardrail breached), ``rollback``
    (a treatment is significantly worse or breaches a guardrail, and none wins) or
    ``continue``. While the sample-ratio-mismatch check fires, ``frozen`` is true and the
    recommendation is always ``continue``.
    """

    schema_name = "experiment_analysis"

    analysis_id: Identifier
    experiment_id: ExperimentId
    model: ModelName
    spec_revision: int = Field(ge=0)
    primary_metric: Name
    recommendation: Literal["promote", "rollback", "continue"]
    winner: VersionName | None = None
    losers: list[VersionName] = Field(default_factory=list, max_length=16)
    reason: BoundedStr
    srm_p_value: float | None = Field(default=None, ge=0, le=1)
    srm_detected: bool = False
    frozen: bool = False
    total_units: int = Field(ge=0)
    #: Power of the always-valid test to detect the spec's minimum detectable effect by
    #: its horizon, and of a fixed-horizon z-test at the same n (None when unplanned).
    expected_power: float | None = Field(default=None, ge=0, le=1)
    fixed_horizon_power: float | None = Field(default=None, ge=0, le=1)
    arms: list[ArmAnalysis] = Field(max_length=16)
    guardrails: list[GuardrailResult] = Field(default_factory=list, max_length=256)
    evidence: list[dict[Name, JsonScalar]] = Field(default_factory=list, max_length=64)
    analyzed_at: EventTime


@dataclass(frozen=True, slots=True)
class ExperimentKeys(KeySpace):
    """Redis keys of the experiment registry and the processor's state.

    >>> ExperimentKeys("mg").spec("exp1")
    'mg:experiment:exp1'
    """

    #: Set of every experiment id.
    index = Key("experiments")
    #: Stream: one entry per registry change (actor, action, old and new revision).
    audit = Key("experiments", "audit")
    #: Pub/sub channel announcing ``experiment_id revision`` on every change.
    changes = Key("experiments", "changes")

    def spec(self, experiment_id: str) -> str:
        """String key: the spec as JSON (its ``revision`` is the compare-and-set token)."""
        return self.key("experiment", experiment_id)

    def by_model(self, model: str) -> str:
        """Set of the experiment ids of a model (what the routing client looks up)."""
        return self.key("experiments", "model", model)

    def split_history(self, experiment_id: str) -> str:
        """List of ``{"from": iso time, "weights": {...}}``, appended on split changes."""
        return self.key("experiment", experiment_id, "splits")

    def partials(self, experiment_id: str) -> str:
        """Hash: task (partition) -> JSON partial aggregates of that partition."""
        return self.key("experiment", experiment_id, "partials")

    def units(self, group: str, task: int) -> str:
        """Hash: per-unit records of one processor task (partition)."""
        return self.key("expstate", group, task, "units")

    def checkpoint(self, group: str, task: int) -> str:
        """String: JSON of a task's offsets and aggregates, written with its units."""
        return self.key("expstate", group, task, "checkpoint")

    def sequential(self, experiment_id: str) -> str:
        """Hash: sequential state per metric and arm: the always-valid p-value (running
        minimum, field ``metric:arm``) and the running confidence sequence
        (``metric:arm:cs_low`` / ``metric:arm:cs_high``)."""
        return self.key("experiment", experiment_id, "sequential")

    def bandit(self, experiment_id: str) -> str:
        """Hash: last bandit update (time, weights)."""
        return self.key("experiment", experiment_id, "bandit")
