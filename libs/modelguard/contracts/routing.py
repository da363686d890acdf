"""The routing table of one model, as stored in Redis and in the routing audit stream.

One Redis hash per model (``RedisKeys.routing(model)``) holds ``revision`` and
``table`` (this model as JSON). Writers change it only by compare-and-set on the
revision (``modelguard.routing.RoutingTableStore``); readers read the ``table`` field
alone, so they never see half a change.

>>> from datetime import datetime, UTC
>>> t = RoutingTable(model="fraud", revision=1, weights={"v1": 0.9, "v2": 0.1},
...                  slots={"v1": 0, "v2": 1}, updated_at=datetime(2026, 1, 1, tzinfo=UTC))
>>> t.salt
'fraud'
"""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import Field, model_validator

from modelguard.contracts.base import (
    BoundedStr,
    Event,
    EventTime,
    Identifier,
    ModelName,
    VersionName,
)
from modelguard.contracts.common import Weight
from modelguard.contracts.limits import LIMITS

#: Versions one table holds at once (``modelguard.core.routing.MAX_SLOTS``).
MAX_TABLE_VERSIONS = 16
#: Allowed distance of the weight sum from 1.
WEIGHT_SUM_TOLERANCE = 1e-6
Slot = Annotated[int, Field(ge=0, lt=MAX_TABLE_VERSIONS)]


class RoutingTable(Event):
    """Traffic weights of a model's versions at one revision.

    ``slots`` gives each version a stable hash slot (kept across revisions, so a unit
    returns to its version when old weights are restored). ``experiment_id``, when set,
    is the experiment of exposure events and salts the assignment, unless
    ``experiment_salt`` (the experiment spec's ``salt``) is set. ``decision_id``
    links the change to its :class:`~modelguard.contracts.decisions.RoutingDecision`.
    """

    schema_name = "routing_table"

    model: ModelName
    revision: int = Field(ge=1)
    weights: dict[VersionName, Weight] = Field(min_length=1, max_length=MAX_TABLE_VERSIONS)
    slots: dict[VersionName, Slot] = Field(max_length=MAX_TABLE_VERSIONS)
    experiment_id: Identifier | None = None
    experiment_salt: Annotated[str, Field(min_length=1, max_length=LIMITS.max_id_length)] | None = (
        None
    )
    updated_at: EventTime
    actor: BoundedStr = "unknown"
    reason: BoundedStr = ""
    decision_id: Identifier | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        total = math.fsum(self.weights.values())
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"weights sum to {total:.6g}, expected 1")
        if set(self.slots) != set(self.weights):
            raise ValueError("slots must name exactly the versions of weights")
        if len(set(self.slots.values())) != len(self.slots):
            raise ValueError("slots must be distinct")
        if self.experiment_salt is not None and self.experiment_id is None:
            raise ValueError("experiment_salt needs an experiment_id")
        return self

    @property
    def salt(self) -> str:
        """Hash salt of the assignment: the experiment's salt (default: its id), else
        the model name."""
        return self.experiment_salt or self.experiment_id or self.model
