"""The controller's decisions (pure): judge a model's state against the routing table.

:func:`decide` judges every serving version with
:func:`~modelguard.core.control.assess.assess` and returns at most one routing change
plus alerts. Decision and incident ids are deterministic (hashes of model, version and
the decisive evidence), so a replay or a second replica proposes the *same* decision,
which the routing table's compare-and-set lets through only once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.ids import stable_id
from modelguard.core.control.assess import Verdict, assess
from modelguard.core.control.policy import Policy, policy_hash
from modelguard.core.control.state import (
    Incident,
    ModelState,
    RolloutState,
    RoutingView,
    evidence_for,
    flush_pending,
)
from modelguard.errors import InvalidInputError


class Decide:
    """One evaluation of one model; collects decisions. Use :func:`decide`."""

    def __init__(self, policy: Policy, state: ModelState, routing: RoutingView, now: datetime):
        self.p, self.s, self.r, self.now = policy, state, routing, now
        self.hash = policy_hash(policy)
        self.out: list[RoutingDecision] = []
        self.changed = False  # at most one routing change per evaluation

    def emit(
        self,
        decision_id: str,
        action: str,
        reason: str,
        *,
        new_weights: dict[str, float] | None = None,
        incident_id: str | None = None,
        verdict: Verdict | None = None,
    ) -> None:
        writes = new_weights is not None and not self.r.frozen
        if new_weights is not None and self.r.frozen:
            action, reason = "hold", f"frozen by an operator; would {action}: {reason}"
        self.out.append(
            RoutingDecision.model_validate(
                {
                    "decision_id": decision_id,
                    "incident_id": incident_id,
                    "model": self.p.model,
                    "action": action,
                    "reason": reason[:1000],
                    "old_weights": dict(self.r.weights),
                    "new_weights": dict(new_weights if writes and new_weights else self.r.weights),
                    "revision_before": self.r.revision,
                    "revision_after": self.r.revision + 1 if writes else self.r.revision,
                    "policy_hash": self.hash,
                    "evidence": verdict.evidence()[:256] if verdict else [],
                    "decided_at": self.now,
                }
            )
        )
        if writes:
            self.changed = True
            self.s.expected_revision = self.r.revision + 1

    def for_incident(
        self,
        incident_id: str,
        verdict: Verdict,
        action: str,
        reason: str,
        *,
        new_weights: dict[str, float] | None = None,
    ) -> None:
        """:meth:`emit` the incident's ``action`` (one decision id per incident and action)."""
        self.emit(
            stable_id("dec", incident_id, action),
            action,
            reason,
            new_weights=new_weights,
            incident_id=incident_id,
            verdict=verdict,
        )


def decide(
    policy: Policy, state: ModelState, routing: RoutingView, now: datetime
) -> tuple[ModelState, list[RoutingDecision]]:
    """Judge the model and propose decisions; returns a *new* state (the input is not
    modified) and the decisions. At most one of them changes weights (``new_weights !=
    old_weights``); the caller applies it with compare-and-set on
    ``revision_before`` and, if that fails, discards the new state and decides again on
    a fresh read."""
    s = state.model_copy(deep=True)
    # partials whose other partitions never reported (e.g. traffic stopped): merge now
    flush_pending(s, None, 0.0, now, policy.partial_timeout_seconds)
    d = Decide(policy, s, routing, now)
    serving = routing.serving
    if not serving:
        return s, []
    _reconcile(d, serving)
    verdicts = {v: assess(policy, evidence_for(s, v, now)) for v in sorted(serving)}
    for version, verdict in verdicts.items():
        _track_incident(d, version, verdict)
    _ramp(d, verdicts)
    return s, d.out


def _reconcile(d: Decide, serving: dict[str, float]) -> None:
    """Learn the champion and the challenger from the table (and notice human edits)."""
    s, r = d.s, d.r
    external = s.expected_revision is not None and r.revision != s.expected_revision
    if external:
        s.expected_revision = r.revision
        if s.rollout is not None:
            s.rollout = None  # a human changed the table: re-learn the rollout below
    if s.expected_revision is None:
        s.expected_revision = r.revision
    if len(serving) == 1:
        only = next(iter(serving))
        s.champion = only
        s.rollout = None
        return
    if s.champion not in serving:
        s.champion = max(serving, key=lambda v: (serving[v], v))
    challengers = sorted((v for v in serving if v != s.champion), key=lambda v: -serving[v])
    if s.rollout is not None and s.rollout.version not in challengers:
        s.rollout = None
    if s.rollout is None and challengers:
        version = challengers[0]
        pct = serving[version] * 100.0
        steps = d.p.rollout.steps
        step = next((i for i, st in enumerate(steps) if st >= pct - 1e-6), len(steps) - 1)
        s.rollout = RolloutState(
            rollout_id=stable_id("rollout", d.p.model, version, r.revision),
            version=version,
            step=step,
            step_started_at=d.now,
        )


def _track_incident(d: Decide, version: str, verdict: Verdict) -> None:
    s, p = d.s, d.p
    incident = s.incidents.get(version)
    latest = s.windows.get(version, [])
    latest_id = latest[-1].event_id if latest else None
    if incident is not None:
        if verdict.status == "healthy" and latest_id != incident.last_window:
            incident.healthy_windows += 1
            incident.last_window = latest_id
            if incident.healthy_windows >= p.clear_after_windows:
                del s.incidents[version]
                s.closed_at[version] = d.now
        elif verdict.status == "breach":
            incident.healthy_windows = 0
            incident.last_window = latest_id
        return
    if verdict.status != "breach":
        return
    is_champion = version == s.champion
    closed = s.closed_at.get(version)
    if is_champion and closed and d.now - closed < timedelta(seconds=p.cooldown_seconds):
        return  # cooldown: the same version does not re-open an incident yet
    incident_id = stable_id("inc", p.model, version, verdict.decisive_event_id)
    s.incidents[version] = Incident(
        incident_id=incident_id,
        version=version,
        opened_at=d.now,
        reason=verdict.reason,
        last_window=latest_id,
    )
    if not is_champion and s.champion is not None and not d.changed:
        _rollback(d, version, incident_id, verdict)
        return
    why = verdict.reason
    d.for_incident(
        incident_id, verdict, "alert", f"{version} (serving) breaches its guardrails: {why}"
    )
    if p.on_champion_breach == "alert_and_retrain":
        d.for_incident(
            incident_id, verdict, "retrain", f"retraining requested for {p.model}: {why}"
        )


def _rollback(d: Decide, version: str, incident_id: str, verdict: Verdict) -> None:
    s, r = d.s, d.r
    champion = s.champion
    if champion is None:
        raise InvalidInputError(f"cannot roll {version} back: the model has no champion")
    weights = dict(r.weights)
    moved = weights.get(version, 0.0)
    weights[version] = 0.0
    weights[champion] = round(weights.get(champion, 0.0) + moved, 9)
    d.for_incident(
        incident_id,
        verdict,
        "rollback",
        f"{version} breaches: {verdict.reason}; traffic back to {champion} (last known good)",
        new_weights=weights,
    )
    if not r.frozen:
        s.rolled_back[version] = r.revision + 1
        if s.rollout is not None and s.rollout.version == version:
            s.rollout = None


def _ramp(d: Decide, verdicts: dict[str, Verdict]) -> None:
    s, p, ro = d.s, d.p, d.s.rollout
    if ro is None or d.changed or ro.version in s.incidents or s.champion is None:
        return
    verdict = verdicts.get(ro.version)
    if verdict is None:
        return
    if verdict.status != "healthy":
        if ro.inconclusive_since is None:
            ro.inconclusive_since = d.now
        waited = (d.now - ro.inconclusive_since).total_seconds()
        if not ro.frozen and waited >= p.freeze_after_seconds:
            ro.frozen = True
            d.emit(
                stable_id("dec", ro.rollout_id, "freeze", ro.step),
                "freeze",
                f"rollout of {ro.version} frozen at {p.rollout.steps[ro.step]:g}%:"
                f" no conclusive evidence for {waited:.0f}s ({verdict.reason})",
                verdict=verdict,
            )
        return
    ro.inconclusive_since = None
    if ro.frozen:
        return  # a frozen rollout waits for an operator
    held = (d.now - ro.step_started_at).total_seconds()
    samples = sum(
        w.n_labelled for w in s.windows.get(ro.version, []) if w.window_start >= ro.step_started_at
    )
    if held < p.rollout.hold_seconds or samples < p.rollout.min_samples_per_step:
        return
    if ro.step + 1 >= len(p.rollout.steps):
        return
    nxt = ro.step + 1
    share = p.rollout.steps[nxt] / 100.0
    weights = {v: 0.0 for v in d.r.weights}
    weights[ro.version] = share
    weights[s.champion] = round(1.0 - share, 9)
    final = nxt == len(p.rollout.steps) - 1
    d.emit(
        stable_id("dec", ro.rollout_id, "step", nxt),
        "promote" if final else "ramp",
        f"{ro.version} healthy for {held:.0f}s with {samples} labelled samples:"
        f" {p.rollout.steps[ro.step]:g}% -> {p.rollout.steps[nxt]:g}%",
        new_weights=weights,
        verdict=verdict,
    )
    if d.r.frozen:
        return
    if final:
        s.champion, s.rollout = ro.version, None
    else:
        ro.step, ro.step_started_at = nxt, d.now
