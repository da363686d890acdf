"""Output of the rollback controller (and manual CLI commands): routing decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

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
from modelguard.contracts.redis_keys import Key, KeySpace


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


@dataclass(frozen=True, slots=True)
class ControlKeys(KeySpace):
    """Redis keys of the rollback controller under a deployment prefix.

    >>> ControlKeys("mg").frozen
    'mg:control:frozen'
    """

    #: Leader lease of the controller replicas (value: the holder's token).
    lease = Key("lease", "controller")
    #: The leader's snapshot (per-model state, input offsets, outbox), JSON.
    state = Key("control", "state")
    #: Hash model -> JSON {actor, reason, at}: models an operator froze.
    frozen = Key("control", "frozen")
    #: Stream of operator commands (freeze, unfreeze, and every manual change).
    audit = Key("control", "audit")
