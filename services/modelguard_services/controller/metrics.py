"""The controller's Prometheus families: decisions, leadership, verdicts, routing weights,
incidents, CAS conflicts, partial windows and the decision latency."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelguard.contracts.decisions import RoutingDecision

#: Every ``RoutingDecision.action``.
ACTIONS: tuple[str, ...] = get_args(RoutingDecision.model_fields["action"].annotation)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "modelguard_controller_decisions_total",
            "Routing decisions taken, by model, action and whether it was a dry run.",
            ["model_name", "action", "dry_run"],
            registry=registry,
        )
        self.leader = Gauge(
            "modelguard_controller_leader",
            "1 while this replica holds the controller lease.",
            ["replica"],
            registry=registry,
        )
        self.verdict = Gauge(
            "modelguard_controller_verdict",
            "Latest verdict per version: 1 for the current status, 0 for the others.",
            ["model_name", "model_version", "status"],
            registry=registry,
        )
        self.weight = Gauge(
            "modelguard_routing_weight",
            "Traffic weight of a version in the routing table, as last read.",
            ["model_name", "model_version"],
            registry=registry,
        )
        self.incidents = Gauge(
            "modelguard_controller_open_incidents",
            "Incidents currently open per model.",
            ["model_name"],
            registry=registry,
        )
        self.conflicts = Counter(
            "modelguard_controller_cas_conflicts_total",
            "Compare-and-set conflicts on the routing table (another writer went first).",
            ["model_name"],
            registry=registry,
        )
        self.late_partials = Counter(
            "modelguard_controller_late_partials_total",
            "Partial metric windows that arrived after their window had been merged"
            " (grace or timeout ran out) and were dropped.",
            ["model_name"],
            registry=registry,
        )
        self.pending_partials = Gauge(
            "modelguard_controller_pending_partial_windows",
            "Windows waiting for the partials of other source partitions.",
            ["model_name"],
            registry=registry,
        )
        self.decide_seconds = Histogram(
            "modelguard_controller_apply_seconds",
            "Time from the start of an evaluation to the decision being applied and published.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
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
