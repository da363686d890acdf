"""Rollback policies per model: guardrails, rollout ramp, cooldown, hysteresis.

Policies live in YAML (``deploy/policies/*.yaml``) and are validated with pydantic;
errors name the file, the model and the field::

    deploy/policies/fraud.yaml: models.fraud.guardrails.0.threshold: Input should be
    greater than 0

A policy's :func:`policy_hash` (canonical JSON, SHA-256) is stamped on every decision so
a decision can be traced to the exact rules that produced it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelguard.contracts.base import ModelName
from modelguard.contracts.codec import format_validation_error
from modelguard.contracts.common import Severity
from modelguard.errors import ConfigError

SeverityName = Literal["low", "medium", "high", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Common(_Strict):
    """Settings shared by every guardrail."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    #: Windows with fewer samples than this are inconclusive (never healthy).
    min_samples: int = Field(default=100, ge=1)
    #: Consecutive breaching windows needed before the breach counts.
    consecutive: int = Field(default=1, ge=1, le=100)
    #: The breaching streak must also span at least this much event time.
    for_seconds: float = Field(default=0.0, ge=0.0)


class ThresholdGuardrail(_Common):
    """A window metric compared with a threshold, with hysteresis.

    ``kind``:
    - ``error_rate``: ``n_errors / n_predictions`` (or the ``metric`` value when the
      window carries it) above ``threshold`` (a fraction, 0.01 = 1%);
    - ``latency``: ``metric`` (default ``latency_p95_ms``) above ``threshold`` (ms);
    - ``metric_above`` / ``metric_below``: any named metric above / below ``threshold``.

    A breach starts when the value crosses ``threshold`` and only clears once it is back
    beyond ``threshold -/+ hysteresis`` (so a value hovering at the line does not flap).
    """

    kind: Literal["error_rate", "latency", "metric_above", "metric_below"]
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    threshold: float
    hysteresis: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind in ("metric_above", "metric_below") and self.metric is None:
            raise ValueError(f"a {self.kind} guardrail needs 'metric'")
        if self.kind == "error_rate" and not 0.0 < self.threshold < 1.0:
            raise ValueError(
                f"error_rate threshold is a fraction in (0, 1), got {self.threshold}"
                " (write 0.01 for 1%)"
            )
        if self.kind == "latency" and self.threshold <= 0:
            raise ValueError(f"latency threshold must be > 0 ms, got {self.threshold}")
        return self

    @property
    def metric_name(self) -> str:
        if self.metric is not None:
            return self.metric
        return {"error_rate": "error_rate", "latency": "latency_p95_ms"}.get(self.kind, "")

    @property
    def above(self) -> bool:
        """True when larger values are worse."""
        return self.kind != "metric_below"


class AccuracyDropGuardrail(_Common):
    """Accuracy more than ``max_drop_percent`` (relative %) below the baseline.

    ``baseline`` is a fixed accuracy (e.g. 0.92, from offline validation) or
    ``champion``: the champion's accuracy in the latest window (A/B comparison; then the
    guardrail does not apply to the champion itself).
    """

    kind: Literal["accuracy_drop"]
    metric: str = Field(default="accuracy", min_length=1, max_length=128)
    max_drop_percent: float = Field(default=2.0, gt=0.0, lt=100.0)
    baseline: float | Literal["champion"] = "champion"
    hysteresis: float = Field(default=0.0, ge=0.0, description="in percent points of drop")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if isinstance(self.baseline, float) and not 0.0 < self.baseline <= 1.0:
            raise ValueError(f"baseline accuracy must be in (0, 1], got {self.baseline}")
        return self


class DriftGuardrail(_Common):
    """Drift signals of ``kind`` at or above ``min_severity`` for the version (or for
    the model when the signal names no version) within ``max_age_seconds``."""

    kind: Literal["data_drift", "concept_drift", "prediction_drift"]
    min_severity: SeverityName = "critical"
    max_age_seconds: float = Field(default=600.0, gt=0)
    min_samples: int = Field(default=1, ge=1)
    #: When True, no signal at all within ``max_age_seconds`` is inconclusive; set it to
    #: False only when the drift processor is known to emit on detection alone.
    required: bool = True

    @property
    def severity(self) -> Severity:
        return Severity[self.min_severity.upper()]

    @property
    def signal_kind(self) -> str:
        return {"data_drift": "data", "concept_drift": "concept"}.get(self.kind, "prediction")


Guardrail = Annotated[
    ThresholdGuardrail | AccuracyDropGuardrail | DriftGuardrail, Field(discriminator="kind")
]


class Rollout(_Strict):
    """Progressive ramp of a challenger: traffic percentages with a hold time each."""

    steps: list[float] = Field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0, 100.0])
    hold_seconds: float = Field(default=60.0, ge=0.0)
    #: Labelled samples the challenger needs at a step before advancing.
    min_samples_per_step: int = Field(default=100, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.steps:
            raise ValueError("steps must not be empty")
        if any(not 0.0 < s <= 100.0 for s in self.steps):
            raise ValueError(f"steps are percentages in (0, 100], got {self.steps}")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must increase strictly, got {self.steps}")
        if self.steps[-1] != 100.0:
            raise ValueError(f"the last step must be 100, got {self.steps[-1]}")
        return self


class Policy(_Strict):
    """Everything the controller needs to judge one model."""

    model: ModelName
    guardrails: list[Guardrail] = Field(min_length=1, max_length=64)
    #: Which metric windows to judge (``tumbling:60``, ``hopping:300``, ``count:1000``);
    #: None takes every window (fine when the processor emits one window size).
    window: str | None = Field(default=None, pattern=r"^(tumbling|hopping|count):[0-9.]+$")
    rollout: Rollout = Field(default_factory=Rollout)
    #: Per-partition partial windows are merged into one window once every partition of
    #: the source topic reported, or once the model's event time (latest window end
    #: seen) is more than this past the window's end (0: the first later window), or
    #: ``partial_timeout_seconds`` after the first partial was emitted (ADR 0005).
    partial_grace_seconds: float = Field(default=0.0, ge=0.0)
    partial_timeout_seconds: float = Field(default=30.0, gt=0.0)
    #: Evidence older than this (by the controller's clock) is stale: never healthy.
    max_evidence_age_seconds: float = Field(default=300.0, gt=0)
    #: After an incident closes, no new incident of the same version within this time.
    cooldown_seconds: float = Field(default=300.0, ge=0)
    #: Healthy windows in a row needed to close an incident (hysteresis on verdicts).
    clear_after_windows: int = Field(default=3, ge=1)
    #: A ramping challenger without conclusive evidence this long is frozen.
    freeze_after_seconds: float = Field(default=300.0, gt=0)
    #: What to do when the only serving version breaches.
    on_champion_breach: Literal["alert", "alert_and_retrain"] = "alert_and_retrain"

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [g.name for g in self.guardrails]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"guardrail names must be unique, repeated: {dupes}")
        return self


class PolicyFile(_Strict):
    """The YAML document: ``models: {name: policy-without-model}``."""

    models: dict[ModelName, dict[str, object]] = Field(min_length=1)


class PolicyError(ConfigError):
    """A policy file that cannot be used; the message names the file and field."""


def policy_hash(policy: Policy) -> str:
    """``sha256:`` + hex digest of the canonical JSON of ``policy``."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_policies(text: str, source: str = "<policy>") -> dict[str, Policy]:
    """Parse a YAML policy document into one :class:`Policy` per model.

    >>> ps = parse_policies('''
    ... models:
    ...   fraud:
    ...     guardrails:
    ...       - {name: errors, kind: error_rate, threshold: 0.01}
    ... ''')
    >>> ps["fraud"].rollout.steps
    [1.0, 5.0, 25.0, 50.0, 100.0]
    >>> try:
    ...     parse_policies("models: {fraud: {guardrails: [{name: e, kind: latency}]}}", "p.yaml")
    ... except PolicyError as exc:
    ...     str(exc)
    'p.yaml: models.fraud.guardrails.0.latency.threshold: Field required'
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: expected a mapping with a 'models' key")
    try:
        doc = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {format_validation_error(exc)}") from None
    out: dict[str, Policy] = {}
    for name, body in doc.models.items():
        if not isinstance(body, dict):
            raise PolicyError(f"{source}: models.{name}: expected a mapping")
        if "model" in body and body["model"] != name:
            raise PolicyError(f"{source}: models.{name}.model: must equal the key {name!r}")
        try:
            out[name] = Policy.model_validate({**body, "model": name})
        except ValidationError as exc:
            msg = format_validation_error(exc)
            parts = [
                f"models.{name}.{p.strip()}".replace(f"models.{name}.<event>", f"models.{name}")
                for p in msg.split("; ")
            ]
            raise PolicyError(f"{source}: {'; '.join(parts)}") from None
    return out


def load_policies(path: Path) -> dict[str, Policy]:
    """Read a policy YAML file (or every ``*.yaml`` in a directory)."""
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    if not files:
        raise PolicyError(f"{path}: no policy files (*.yaml)")
    out: dict[str, Policy] = {}
    for f in files:
        try:
            text = f.read_text()
        except OSError as exc:
            raise PolicyError(f"{f}: cannot read: {exc.strerror}") from None
        for name, pol in parse_policies(text, str(f)).items():
            if name in out:
                raise PolicyError(f"{f}: models.{name}: defined in more than one file")
            out[name] = pol
    return out
