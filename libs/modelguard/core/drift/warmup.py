"""The warm-up of a version without a reference: buffer its first predictions, learn a
reference from the ``warmup_events`` earliest *by event time* once no partition can
still deliver an earlier one (see :mod:`~modelguard.core.drift.processor`).

Over Kafka the worker reads several partitions, and while it catches up on a backlog it
gets them one after the other, so "the first predictions to arrive" may be one
partition's whole history, drifted part included. The warm-up is therefore learned only
once every partition's watermark (the latest prediction time seen on it) has passed the
event time of the ``warmup_events``-th earliest prediction buffered, or the partition
has been read to its end. Without partitions (files, tests) the input is one ordered
stream and arrival order is time order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift.config import DriftConfig
from modelguard.core.drift.events import Observation, WarmupDropped
from modelguard.core.drift.reference import ReferenceProfile, build_profile
from modelguard.core.drift.state import DriftState


def by_time(o: Observation) -> datetime:
    return o.event_time


def advance_watermarks(
    state: DriftState,
    events: Sequence[PredictionLogged | LabelObserved | Observation],
    partitions: Sequence[int],
) -> None:
    """Raise each partition's watermark to the latest prediction time seen on it."""
    marks = state.watermarks
    for e, p in zip(events, partitions, strict=True):
        if not isinstance(e, LabelObserved):
            t = e.event_time
            if p not in marks or t > marks[p]:
                marks[p] = t


def low_watermark(state: DriftState, sources: frozenset[int]) -> datetime | None:
    """Event time up to which every partition of ``sources`` (the assigned ones) has
    been read; None when some partition holds it back without having delivered anything."""
    waiting = sources - state.drained
    if not waiting:
        return datetime.max.replace(tzinfo=UTC)
    marks = [state.watermarks.get(p) for p in waiting]
    present = [m for m in marks if m is not None]
    return min(present) if len(present) == len(marks) else None


def ready(state: DriftState, buf: list[Observation], need: int) -> bool:
    """The ``need`` earliest predictions of ``buf`` are final (none earlier can come)."""
    if len(buf) < need:
        return False
    if state.sources is None:
        return True
    low = low_watermark(state, state.sources)
    if low is None:
        return False
    cutoff = heapq.nsmallest(need, (o.event_time for o in buf))[-1]
    return cutoff <= low


def buffer(
    state: DriftState, model: str, version: str, obs: list[Observation], config: DriftConfig
) -> tuple[list[Observation], WarmupDropped | None]:
    """Add ``obs`` to the version's warm-up buffer; over partitions the buffer holds at
    most ``warmup_buffer_factor`` warm-ups (the latest by event time are dropped)."""
    need = config.warmup_events
    buf = state.warmup.setdefault((model, version), [])
    buf.extend(obs)
    if state.sources is not None:
        cap = max(need, need * config.warmup_buffer_factor)
        if len(buf) > cap:  # keep the earliest: only they can be the warm-up
            buf.sort(key=by_time)
            dropped = len(buf) - cap
            state.warmup_dropped += dropped
            key = (model, version)
            state.warmup_dropped_by_version[key] = (
                state.warmup_dropped_by_version.get(key, 0) + dropped
            )
            del buf[cap:]
            return buf, WarmupDropped(model, version, dropped, state.warmup_dropped)
    return buf, None


def learn(
    state: DriftState, model: str, version: str, need: int
) -> tuple[ReferenceProfile, list[Observation]]:
    """Learn the version's reference from its ``need`` earliest buffered predictions and
    install it; returns it and the rest of the buffer (to be tested)."""
    buf = state.warmup[(model, version)]
    if state.sources is not None:
        buf.sort(key=by_time)  # stable: ties keep their arrival order
    first, rest = buf[:need], buf[need:]
    ref = learn_reference(first, model, version, source=f"warm-up of {len(first)} predictions")
    del state.warmup[(model, version)]
    state.references[(model, version)] = ref
    return ref, rest


def learn_reference(
    obs: Sequence[Observation],
    model: str,
    version: str | None,
    *,
    source: str = "",
    categorical: Iterable[str] = (),
) -> ReferenceProfile:
    """A reference from observations (warm-up window or a file's rows)."""
    names: dict[str, None] = {}
    for o in obs:
        for k in o.features:
            names.setdefault(k, None)
    columns = {k: [o.features.get(k) for o in obs] for k in names}
    outputs: dict[str, list[object]] = {}
    if any(o.prediction is not None for o in obs):
        outputs["prediction"] = [o.prediction for o in obs]
    if any(o.confidence is not None for o in obs):
        outputs["confidence"] = [o.confidence for o in obs]
    classification = all(o.task == "classification" for o in obs)
    return build_profile(
        columns,
        model=model,
        version=version,
        outputs=outputs,
        categorical=categorical,
        source=source,
        classification=classification,
    )
