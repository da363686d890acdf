"""The controller's pure decision state machine: rollback, ramp, freeze, alerts, ids."""

from __future__ import annotations

import itertools
from datetime import datetime

from modelguard.contracts.common import Severity
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control import ModelState, RoutingView, decide, observe, parse_policies, run
from modelguard.core.control.policy import policy_hash
from tests.support.control import GUARDRAILS_YAML, drift_signal, metric_window
from tests.support.control import after as now

POLICY = parse_policies(
    f"""
models:
  fraud:
    cooldown_seconds: 120
    clear_after_windows: 2
    freeze_after_seconds: 60
{GUARDRAILS_YAML}\
    rollout: {{steps: [1, 5, 25, 50, 100], hold_seconds: 30, min_samples_per_step: 150}}
"""
)["fraud"]


def mw(
    i: int, version: str, *, acc: float = 0.9, errors: int = 0, n: int = 100
) -> MetricWindowClosed:
    return metric_window(i, version, n=n, errors=errors, metrics={"accuracy": acc})


def ds(i: int, severity: Severity = Severity.CRITICAL, version: str | None = "v1") -> DriftSignal:
    detected = severity >= Severity.LOW
    return drift_signal(
        i, severity, detected=detected, statistic=0.5, n_current=300, version=version
    )


def stream(
    n: int, bad_from: int | None = None, versions: tuple[str, ...] = ("v1", "v2")
) -> list[tuple[datetime, MetricWindowClosed | DriftSignal | None]]:
    out: list[tuple[datetime, MetricWindowClosed | DriftSignal | None]] = []
    for i in range(n):
        for v in versions:
            bad = v == "v2" and bad_from is not None and i >= bad_from
            out.append((now(i), mw(i, v, acc=0.8 if bad else 0.9, errors=5 if bad else 0)))
    return out


RAMPING = RoutingView(weights={"v1": 0.99, "v2": 0.01}, revision=7)


def actions(decisions: list[RoutingDecision]) -> list[str]:
    return [d.action for d in decisions]


def test_bad_challenger_is_rolled_back_exactly_once() -> None:
    state, table, decisions = run(POLICY, stream(12, bad_from=2), RAMPING)
    assert actions(decisions) == ["rollback"]
    (rb,) = decisions
    assert rb.old_weights == {"v1": 0.99, "v2": 0.01}
    assert rb.new_weights == {"v1": 1.0, "v2": 0.0}
    assert (rb.revision_before, rb.revision_after) == (7, 8)
    assert rb.policy_hash == policy_hash(POLICY)
    assert rb.incident_id and rb.incident_id.startswith("inc-")
    assert any(e["guardrail"] == "accuracy" and e["status"] == "breach" for e in rb.evidence)
    assert "traffic back to v1" in rb.reason
    assert table.weights == {"v1": 1.0, "v2": 0.0}
    assert state.champion == "v1" and state.rollout is None
    assert state.rolled_back == {"v2": 8}


def test_rollback_happens_at_any_ramp_step_and_ids_are_deterministic() -> None:
    events = stream(30, bad_from=8)
    _, _, first = run(POLICY, events, RAMPING)
    _, _, again = run(POLICY, events, RAMPING)
    assert actions(first)[-1] == "rollback"
    assert "ramp" in actions(first)
    assert [d.decision_id for d in first] == [d.decision_id for d in again]
    assert len({d.decision_id for d in first}) == len(first)
    assert first[-1].new_weights["v2"] == 0.0


def test_good_challenger_ramps_to_100_percent_with_holds_and_samples() -> None:
    state, table, decisions = run(POLICY, stream(40), RAMPING)
    assert actions(decisions) == ["ramp", "ramp", "ramp", "promote"]
    shares = [d.new_weights["v2"] for d in decisions]
    assert shares == [0.05, 0.25, 0.5, 1.0]
    assert table.weights == {"v1": 0.0, "v2": 1.0}
    assert state.champion == "v2" and state.rollout is None
    times = [d.decided_at for d in decisions]
    assert all((b - a).total_seconds() >= 30 for a, b in itertools.pairwise(times))
    for d in decisions:
        assert sum(d.new_weights.values()) == 1.0


def test_ramp_waits_for_minimum_samples() -> None:
    events = [(now(i), mw(i, v, n=10)) for i in range(40) for v in ("v1", "v2")]
    _, table, decisions = run(POLICY, events, RAMPING)
    # 10 samples per window < min_samples (50): every verdict inconclusive -> frozen
    assert actions(decisions) == ["freeze"]
    assert table == RAMPING


def test_missing_metrics_freeze_the_rollout_and_never_promote() -> None:
    ticks: list[tuple[datetime, MetricWindowClosed | DriftSignal | None]] = [
        (now(i), mw(i, "v1")) for i in range(30)
    ]
    state, table, decisions = run(POLICY, ticks, RAMPING)
    assert actions(decisions) == ["freeze"]
    (freeze,) = decisions
    assert freeze.new_weights == freeze.old_weights == RAMPING.weights
    assert "no conclusive evidence" in freeze.reason
    assert "no metric windows" in freeze.reason
    assert table.revision == RAMPING.revision
    assert state.rollout is not None and state.rollout.frozen
    # metrics come back healthy later: still frozen, not promoted
    later = [(now(i), mw(i, v)) for i in range(30, 60) for v in ("v1", "v2")]
    state2 = state
    for t, e in later:
        assert e is not None
        observe(state2, e, POLICY)
        state2, more = decide(POLICY, state2, table, t)
        assert more == []


def test_serving_champion_breach_alerts_and_requests_retraining_without_flapping() -> None:
    single = RoutingView(weights={"v1": 1.0}, revision=3)
    events: list[tuple[datetime, MetricWindowClosed | DriftSignal | None]] = []
    for i in range(20):
        events.append((now(i), mw(i, "v1", errors=5 if 3 <= i < 12 else 0)))
    _, table, decisions = run(POLICY, events, single)
    assert actions(decisions) == ["alert", "retrain"]
    assert decisions[0].incident_id == decisions[1].incident_id
    assert decisions[0].new_weights == decisions[0].old_weights == {"v1": 1.0}
    assert table == single


def test_cooldown_and_hysteresis_prevent_alert_flapping() -> None:
    single = RoutingView(weights={"v1": 1.0}, revision=3)
    # breach, one healthy window (not enough to close), breach again: one incident
    pattern = [5, 5, 0, 5, 5, 0, 0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5]
    events: list[tuple[datetime, MetricWindowClosed | DriftSignal | None]] = [
        (now(i), mw(i, "v1", errors=e)) for i, e in enumerate(pattern)
    ]
    _, _, decisions = run(POLICY, events, single)
    # incident 1 at window 1; closes after 2 healthy windows (window 6); the breach at
    # 7-8 is within the 120 s cooldown: no new incident. Windows 21-22 breach after the
    # cooldown: a second incident.
    assert actions(decisions) == ["alert", "retrain", "alert", "retrain"]
    assert decisions[0].incident_id != decisions[2].incident_id
    assert decisions[2].decided_at == now(22)


def test_data_drift_on_the_champion_raises_an_alert_while_challenger_ramps() -> None:
    events = stream(8)
    events.insert(5, (now(2), ds(2)))
    _, table, decisions = run(POLICY, events, RAMPING)
    assert actions(decisions)[:2] == ["alert", "retrain"]
    assert "drift" in decisions[0].reason
    assert decisions[0].new_weights == RAMPING.weights
    assert table.weights["v2"] > 0  # the drift is the champion's, the challenger stays


def test_replayed_events_are_ignored() -> None:
    state = ModelState(model="fraud")
    e = mw(0, "v1")
    assert observe(state, e, POLICY)
    assert not observe(state, e, POLICY)
    assert len(state.windows["v1"]) == 1


def test_operator_freeze_turns_rollback_into_hold() -> None:
    frozen = RAMPING.model_copy(update={"frozen": True})
    _, table, decisions = run(POLICY, stream(8, bad_from=1), frozen)
    assert actions(decisions) == ["hold"]
    assert decisions[0].new_weights == decisions[0].old_weights
    assert "frozen by an operator; would rollback" in decisions[0].reason
    assert table == frozen


def test_human_change_restarts_rollout_tracking() -> None:
    state, table, decisions = run(POLICY, stream(12, bad_from=2), RAMPING)
    assert actions(decisions) == ["rollback"]
    # an operator re-introduces v2 at 5% (new revision): a new rollout, which ramps
    human = RoutingView(weights={"v1": 0.95, "v2": 0.05}, revision=table.revision + 1)
    decisions2: list[RoutingDecision] = []
    current = human
    for i in range(12, 40):
        for v in ("v1", "v2"):
            observe(state, mw(i, v), POLICY)
        state, out = decide(POLICY, state, current, now(i))
        for d in out:
            current = RoutingView(weights=d.new_weights, revision=d.revision_after or 0)
        decisions2 += out
    assert actions(decisions2) == ["ramp", "ramp", "promote"]
    assert current.weights == {"v1": 0.0, "v2": 1.0}


def test_state_round_trips_through_json() -> None:
    state, _, _ = run(POLICY, stream(6, bad_from=1), RAMPING)
    again = ModelState.model_validate_json(state.model_dump_json())
    assert again == state


def test_decide_does_not_modify_its_input_state() -> None:
    state = ModelState(model="fraud")
    for _, e in stream(3, bad_from=0):
        assert e is not None
        observe(state, e, POLICY)
    before = state.model_dump_json()
    _, decisions = decide(POLICY, state, RAMPING, now(2))
    assert actions(decisions) == ["rollback"]
    assert state.model_dump_json() == before


def test_empty_routing_table_decides_nothing() -> None:
    _, _, decisions = run(POLICY, stream(5, bad_from=0), RoutingView())
    assert decisions == []
