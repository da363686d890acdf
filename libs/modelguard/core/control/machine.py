"""The controller's decision state machine (pure): evidence in, routing decisions out.

Per model, :class:`ModelState` keeps the last known good version (the champion), the
ramp of a challenger, open incidents and a bounded window of recent evidence. It is a
plain JSON-able value, saved by the service after every batch together with the input
offsets, so a restarted controller continues exactly where the last one stopped.

- :func:`observe` adds an event (deduplicated by event id: at-least-once input is fine).
  Per-partition partial windows are buffered and merged into one window first
  (:mod:`modelguard.core.control.partials`): the state machine judges whole windows.
- :func:`decide` judges every serving version with :func:`assess` against the current
  routing table and returns at most one routing change plus alerts. Decision and incident
  ids are deterministic (hashes of model, version and the decisive evidence), so a replay
  or a second replica proposes the *same* decision, which the routing table's
  compare-and-set lets through only once.

The state and :func:`observe` live in :mod:`modelguard.core.control.state`, the
decisions in :mod:`modelguard.core.control.decide`; this module re-exports both and
holds the in-memory driver :func:`run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control.decide import Decide, decide
from modelguard.core.control.policy import Policy
from modelguard.core.control.state import (
    MAX_DRIFT,
    MAX_SEEN,
    MAX_WINDOWS_PER_VERSION,
    WEIGHT_TOLERANCE,
    Incident,
    ModelState,
    RolloutState,
    RoutingView,
    evidence_for,
    observe,
)

__all__ = [
    "MAX_DRIFT",
    "MAX_SEEN",
    "MAX_WINDOWS_PER_VERSION",
    "WEIGHT_TOLERANCE",
    "Decide",
    "Incident",
    "ModelState",
    "RolloutState",
    "RoutingView",
    "decide",
    "evidence_for",
    "observe",
    "run",
]


def run(
    policy: Policy,
    events: Sequence[tuple[datetime, MetricWindowClosed | DriftSignal | None]],
    routing: RoutingView,
    *,
    partitions: int | None = None,
) -> tuple[ModelState, RoutingView, list[RoutingDecision]]:
    """In-memory driver: feed ``(now, event-or-tick)`` pairs, apply every weight change
    to an in-memory table, return the final state, table and all decisions
    (``partitions``: the source topic's partition count, as for :func:`observe`)."""
    state = ModelState(model=policy.model)
    table = routing
    out: list[RoutingDecision] = []
    for now, event in events:
        if event is not None:
            observe(state, event, policy, partitions=partitions)
        state, decisions = decide(policy, state, table, now)
        for dec in decisions:
            if dec.new_weights != dec.old_weights:
                table = RoutingView(
                    weights=dict(dec.new_weights),
                    revision=dec.revision_after or table.revision + 1,
                    frozen=table.frozen,
                )
        out.extend(decisions)
    return state, table, out
