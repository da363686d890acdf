"""Rollback controller: metric windows and drift signals in, routing decisions out.

Only the replica holding the leader lease consumes and decides; its state (per-model
decision state, input offsets and an outbox of decisions being applied) is saved in
Redis, fenced by the lease, so a successor continues exactly where it stopped (ADR 0004).
"""

from modelguard_services.controller.app import (
    ACTIONS,
    ControllerMetrics,
    ControllerService,
    RoutingWriter,
    published_decision_ids,
)
from modelguard_services.controller.store import ControllerStore, LostLeaseError, Snapshot

__all__ = [
    "ACTIONS",
    "ControllerMetrics",
    "ControllerService",
    "ControllerStore",
    "LostLeaseError",
    "RoutingWriter",
    "Snapshot",
    "published_decision_ids",
]
