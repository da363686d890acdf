"""The demo's timeline: recognises the milestones among the tailed events (the first
degraded metric window, the drift signal, the rollback and its routing change, ramps,
alerts) and records them in the :class:`LoopResult`, saying one line for each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.routing import RoutingTable
from modelguard.routing import RoutingTableStore
from modelguard_services.demo.results import LoopResult
from modelguard_services.demo.tail import Tailed

Say = Callable[[float | None, str], None]


class Timeline:
    """Folds tailed events into a :class:`LoopResult`; ``say(t, message)`` gets the
    lines. A challenger window below ``bad_accuracy`` shows the incident."""

    def __init__(self, say: Say, bad_accuracy: float) -> None:
        self._say = say
        self._bad_accuracy = bad_accuracy

    def on_event(
        self, r: LoopResult, event: Tailed, at: datetime, table: RoutingTableStore
    ) -> None:
        if isinstance(event, MetricWindowClosed):
            accuracy = event.metrics.get("accuracy")
            if (
                r.bad_window is None
                and event.version == r.challenger
                and event.window_end > r.degrade_at
                and accuracy is not None
                and accuracy < self._bad_accuracy
            ):
                r.bad_window, r.bad_window_seen_at = event, at
                self._say(
                    r.t(at),
                    f"metrics processor: {event.model}/{event.version} window "
                    f"[{r.t(event.window_start):.0f}s, {r.t(event.window_end):.0f}s) closed "
                    f"with accuracy {accuracy:.2f} ({event.n_labelled} labelled, "
                    f"partition {','.join(map(str, event.partitions)) or 'all'})",
                )
            return
        if isinstance(event, DriftSignal):
            if (
                r.drift_signal is None
                and event.drift_detected
                and event.kind == "data"
                and event.feature == r.drift_feature
                and event.version == r.champion
                and event.window_end >= r.drift_at
            ):
                r.drift_signal, r.drift_signal_seen_at = event, at
                self._say(
                    r.t(at),
                    f"DETECTED by the drift processor: {event.model}/{event.version} "
                    f"{event.feature} {event.test}={event.statistic:.3g} "
                    f"severity {event.severity.name}",
                )
            return
        r.decisions.append(event)
        d = event
        if d.action == "rollback" and r.rollback is None:
            r.rollback = d
            r.rollback_table = next(
                (t for t in table.history(d.model) if t.decision_id == d.decision_id), None
            )
            self._say(r.t(d.decided_at), f"DETECTED by the controller: {short(d.reason)}")
            if r.rollback_table is not None:
                changed = r.rollback_table.updated_at
                self._say(
                    r.t(changed),
                    f"ROUTING CHANGED: {d.model} {weights(r.rollback_table)} "
                    f"(rev {r.rollback_table.revision}; "
                    f"{r.degradation_to_routing_seconds:.1f}s after the incident)",
                )
        elif d.action in ("ramp", "promote"):
            self._say(
                r.t(d.decided_at),
                f"routing: {d.action} -> {pct(d.new_weights)} (rev {d.revision_after})",
            )
        elif d.action == "alert" and r.champion_alert is None:
            r.champion_alert = d
            self._say(r.t(d.decided_at), f"controller alert: {short(d.reason)}")
        elif d.action not in ("alert", "retrain"):
            self._say(r.t(d.decided_at), f"controller {d.action}: {short(d.reason)}")


def pct(weights: dict[str, float]) -> str:
    return " / ".join(f"{v} {w * 100:g}%" for v, w in sorted(weights.items()))


def weights(table: RoutingTable) -> str:
    return pct(dict(table.weights))


def short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
