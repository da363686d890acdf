"""The controller's per-model state (pure) and how evidence enters it.

:class:`ModelState` keeps the last known good version (the champion), the ramp of a
challenger, open incidents and a bounded window of recent evidence; :func:`observe` adds
an event to it (deduplicated by event id: at-least-once input is fine). Per-partition
partial windows are buffered and merged into one window first
(:mod:`modelguard.core.control.partials`): the state machine judges whole windows.
:func:`evidence_for` is what :func:`modelguard.core.control.assess.assess` judges.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control import partials
from modelguard.core.control.assess import Evidence
from modelguard.core.control.evidence import DriftRecord, WindowRecord, window_key
from modelguard.core.control.partials import PendingWindow
from modelguard.core.control.policy import Policy

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
    return flush_pending(state, state.event_time, grace, None, 0.0) or added


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


def flush_pending(
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
