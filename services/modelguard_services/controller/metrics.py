"""The controller's Prometheus families: decisions, leadership, verdicts, routing weights,
incidents, CAS conflicts, partial windows and the decision latency."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import counter, gauge, histogram
from modelguard.contracts import telemetry
from modelguard.contracts.decisions import RoutingDecision

#: Every ``RoutingDecision.action``.
ACTIONS: tuple[str, ...] = get_args(RoutingDecision.model_fields["action"].annotation)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = counter(telemetry.MODELGUARD_CONTROLLER_DECISIONS, registry)
        self.leader = gauge(telemetry.MODELGUARD_CONTROLLER_LEADER, registry)
        self.verdict = gauge(telemetry.MODELGUARD_CONTROLLER_VERDICT, registry)
        self.weight = gauge(telemetry.MODELGUARD_ROUTING_WEIGHT, registry)
        self.incidents = gauge(telemetry.MODELGUARD_CONTROLLER_OPEN_INCIDENTS, registry)
        self.conflicts = counter(telemetry.MODELGUARD_CONTROLLER_CAS_CONFLICTS, registry)
        self.late_partials = counter(telemetry.MODELGUARD_CONTROLLER_LATE_PARTIALS, registry)
        self.pending_partials = gauge(
            telemetry.MODELGUARD_CONTROLLER_PENDING_PARTIAL_WINDOWS, registry
        )
        self.decide_seconds = histogram(telemetry.MODELGUARD_CONTROLLER_APPLY_SECONDS, registry)
        self._initialised: set[tuple[str, str]] = set()

    def init_decisions(self, model: str, dry_run: bool) -> None:
        """Create every action's decision series of ``model`` at 0, so that the first
        decision is a 0 -> 1 step ``increase()`` sees (a series born at 1 has none)."""
        key = (model, str(dry_run).lower())
        if key in self._initialised:
            return
        self._initialised.add(key)
        for action in ACTIONS:
            self.decisions.labels(model, action, key[1])
        self.late_partials.labels(model)
        self.pending_partials.labels(model)

    def count_decision(self, d: RoutingDecision) -> None:
        self.init_decisions(d.model, d.dry_run)
        self.decisions.labels(d.model, d.action, str(d.dry_run).lower()).inc()
