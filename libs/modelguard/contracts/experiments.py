"""Experiment events: exposures (a unit saw an arm) and outcomes (what happened next)."""

from __future__ import annotations

from pydantic import Field

from modelguard.contracts.base import Event, EventTime, Identifier, ModelName, Name, VersionName


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
