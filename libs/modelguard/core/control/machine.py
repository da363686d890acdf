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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.ids import stable_id
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control import partials
from modelguard.core.control.assess import Evidence, Verdict, assess
from modelguard.core.control.evidence import DriftRecord, WindowRecord, window_key
from modelguard.core.control.partials import PendingWindow
from modelguard.core.control.policy import Policy, policy_hash
from modelguard.errors import InvalidInputError

MAX_WINDOWS_PER_VERSION = 50
MAX_DRIFT = 400
MAX_SEEN = 4000
WEIGHT_TOLERANCE = 1e-6


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutingView(_State):
    """The routing table as the service read it (weights, revision) plus manual freeze."""

    weights: dict[str, float] = Field(default_factory=dict)
    revision: int = 0
    frozen: bool = False

    @property
    def serving(self) -> dict[str, float]:
        return {v: w for v, w in self.weights.items() if w > WEIGHT_TOLERANCE}


class Incident(_State):
    incident_id: str
    version: str
    opened_at: datetime
    reason: str
    healthy_windows: int = 0
    last_window: str | None = None


class RolloutState(_State):
    rollout_id: str
    version: str
    step: int
    step_started_at: datetime
    frozen: bool = False
    inconclusive_since: datetime | None = None


class ModelState(_State):
    """Everything the controller remembers about one model (JSON-able)."""

    model: str
    champion: str | None = None
    rollout: RolloutState | None = None
    incidents: dict[str, Incident] = Field(default_factory=dict)
    closed_at: dict[str, datetime] = Field(default_factory=dict)
    rolled_back: dict[str, int] = Field(default_factory=dict)
    #: Revision of the table after our own last write (an other value: a human acted).
    expected_revision: int | None = None
    windows: dict[str, list[WindowRecord]] = Field(default_factory=dict)
    drift: list[DriftRecord] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    #: Partial windows waiting for the other partitions, by ``partials.pending_key``.
    pending: dict[str, PendingWindow] = Field(default_factory=dict)
    #: The model's event time: the latest end of a time window seen (any partition).
    event_time: datetime | None = None
    #: Partials that arrived after their window had been merged (counted, dropped).
    late_partials: int = 0


def observe(
    state: ModelState,
    event: MetricWindowClosed | DriftSignal,
    policy: Policy | None = None,
    *,
    partitions: int | None = None,
) -> bool:
    """Add ``event`` to ``state`` in place; True when a window or a drift signal was
    added to the evidence. False for a replay (an event id already seen), a window the
    policy does not select, a partial still waiting for the other partitions, or a late
    partial (counted in ``late_partials``).

    ``partitions`` is the partition count of the source (predictions) topic: a window
    is complete once partials of all of them arrived (None: unknown, so partials are
    merged by event-time grace or timeout only).
    """
    if event.event_id in state.seen:
        return False
    state.seen.append(event.event_id)
    del state.seen[:-MAX_SEEN]
    if not isinstance(event, MetricWindowClosed):
        state.drift.append(DriftRecord.from_event(event))
        del state.drift[:-MAX_DRIFT]
        return True
    grace = partials.DEFAULT_GRACE_SECONDS if policy is None else policy.partial_grace_seconds
    added = False
    if event.window.kind != "count" and (
        state.event_time is None or event.window_end > state.event_time
    ):
        state.event_time = event.window_end
    if policy is None or policy.window in (None, window_key(event)):
        if not partials.is_partial(event, partitions):
            _add_window(state, WindowRecord.from_event(event))
            added = True
        else:
            added = _add_partial(state, event, partitions)
    return _flush_pending(state, state.event_time, grace, None, 0.0) or added


def _add_partial(state: ModelState, event: MetricWindowClosed, partitions: int | None) -> bool:
    key = partials.pending_key(event)
    pending = state.pending.get(key)
    if pending is None:
        wkey = window_key(event)
        if any(
            r.window == wkey and r.window_start == event.window_start
            for r in state.windows.get(event.version, [])
        ):
            state.late_partials += 1  # its window was merged (and judged) already
            return False
        pending = state.pending[key] = partials.start(event)
    partials.add(pending, event)
    if not partials.covers(pending, partitions):
        return False
    del state.pending[key]
    _add_window(state, _finish(state, pending, complete=True))
    return True


def _flush_pending(
    state: ModelState,
    event_time: datetime | None,
    grace: float,
    now: datetime | None,
    timeout: float,
) -> bool:
    """Merge the pending windows whose grace (event time) or timeout (``now``) ran out."""
    due = [
        key
        for key, p in state.pending.items()
        if (event_time is not None and event_time > p.window_end + timedelta(seconds=grace))
        or (now is not None and now >= p.first_emitted_at + timedelta(seconds=timeout))
    ]
    for key in sorted(due, key=lambda k: (state.pending[k].window_end, k)):
        pending = state.pending.pop(key)
        _add_window(state, _finish(state, pending, complete=False))
    return bool(due)


def _finish(state: ModelState, pending: PendingWindow, *, complete: bool) -> WindowRecord:
    earlier = [
        r
        for r in state.windows.get(pending.version, [])
        if r.window == pending.window and r.window_end <= pending.window_start
    ]
    previous = max(earlier, key=lambda r: (r.window_end, r.event_id)) if earlier else None
    return partials.finish(state.model, pending, complete=complete, previous=previous)


def _add_window(state: ModelState, record: WindowRecord) -> None:
    records = state.windows.setdefault(record.version, [])
    records.append(record)
    records.sort(key=lambda r: (r.window_end, r.event_id))
    del records[:-MAX_WINDOWS_PER_VERSION]


def evidence_for(state: ModelState, version: str, now: datetime) -> Evidence:
    champion = state.champion
    is_champion = version == champion
    drift = [d for d in state.drift if d.version == version or (d.version is None and is_champion)]
    baseline = state.windows.get(champion, []) if champion and not is_champion else []
    return Evidence(
        version=version,
        now=now,
        windows=state.windows.get(version, []),
        baseline=baseline,
        drift=drift,
        is_champion=is_champion,
    )


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
    _flush_pending(s, None, 0.0, now, policy.partial_timeout_seconds)
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
    d.emit(
        stable_id("dec", incident_id, "alert"),
        "alert",
        f"{version} (serving) breaches its guardrails: {verdict.reason}",
        incident_id=incident_id,
        verdict=verdict,
    )
    if p.on_champion_breach == "alert_and_retrain":
        d.emit(
            stable_id("dec", incident_id, "retrain"),
            "retrain",
            f"retraining requested for {p.model}: {verdict.reason}",
            incident_id=incident_id,
            verdict=verdict,
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
    d.emit(
        stable_id("dec", incident_id, "rollback"),
        "rollback",
        f"{version} breaches: {verdict.reason}; traffic back to {champion} (last known good)",
        new_weights=weights,
        incident_id=incident_id,
        verdict=verdict,
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
