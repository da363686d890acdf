"""What the closed loop runs (:class:`LoopConfig`) and what it saw (:class:`LoopResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.routing import RoutingTable

REPO = Path(__file__).resolve().parents[3]
DRIFT_ALERT = "ModelDataDriftDetected"


@dataclass(frozen=True)
class LoopConfig:
    """What to run. The defaults are the README demo (about a minute)."""

    scenario: Path = REPO / "deploy" / "scenarios" / "demo-canary.yaml"
    policies: Path = REPO / "deploy" / "policies" / "demo" / "fraud.yaml"
    rules_dir: Path = REPO / "deploy" / "prometheus" / "rules"
    window_seconds: float = 4.0
    drift_window_events: int = 500
    #: Wall seconds from the start of traffic until the loop must have closed.
    deadline_seconds: float = 100.0
    #: Seconds to wait for each service to come up.
    start_timeout: float = 30.0
    run_dir: Path = REPO / ".run" / "demo"
    webhook_port: int | None = None


@dataclass
class LoopResult:
    """What the loop did; times are UTC wall clock (= simulated time: speed 1)."""

    prefix: str
    model: str
    champion: str
    challenger: str
    drift_feature: str
    start_time: datetime
    degrade_at: datetime
    drift_at: datetime
    decisions: list[RoutingDecision] = field(default_factory=list)
    bad_window: MetricWindowClosed | None = None
    bad_window_seen_at: datetime | None = None
    rollback: RoutingDecision | None = None
    rollback_table: RoutingTable | None = None
    drift_signal: DriftSignal | None = None
    drift_signal_seen_at: datetime | None = None
    champion_alert: RoutingDecision | None = None
    alert: dict[str, Any] | None = None
    alert_seen_at: datetime | None = None
    webhook_alerts: list[dict[str, Any]] = field(default_factory=list)
    table: RoutingTable | None = None
    metrics_urls: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def t(self, when: datetime | None) -> float | None:
        """Seconds since the start of traffic."""
        return None if when is None else (when - self.start_time).total_seconds()

    @property
    def missing(self) -> list[str]:
        out = []
        if self.rollback is None or self.rollback_table is None:
            out.append(f"no rollback of {self.model}/{self.challenger} in the routing table")
        if self.drift_signal is None:
            out.append(f"no drift signal for {self.model}/{self.champion}.{self.drift_feature}")
        if self.alert is None:
            out.append(f"no {DRIFT_ALERT} alert in Alertmanager")
        return out

    @property
    def closed(self) -> bool:
        return not self.missing and self.error is None

    @property
    def degradation_to_routing_seconds(self) -> float | None:
        if self.rollback_table is None:
            return None
        return (self.rollback_table.updated_at - self.degrade_at).total_seconds()
