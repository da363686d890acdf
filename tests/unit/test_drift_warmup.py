"""The event-time warm-up: a reference learned from live traffic is the earliest traffic,
whatever order the worker's partitions arrive in (regression: a 3 sigma shift on most of
a window stayed unflagged because the warm-up had learned the shifted values)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.drift import (
    DriftConfig,
    DriftProcessor,
    DriftState,
    Output,
    ReferenceLearned,
    WindowReport,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PARTITIONS = 3


def _dashboard_stream(model: str = "dash") -> list[PredictionLogged]:
    """The stream of tests/integration/test_dashboards.py: two versions interleaved, a
    timeout every 50th prediction, ``amount`` shifted by 3 sigma from the 450th on."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(1000):
        version = "v1" if i % 2 else "v2"
        shift = 3.0 if i >= 450 else 0.0
        features = {"amount": float(rng.normal(shift, 1)), "age": float(rng.normal(0, 1))}
        y = int(rng.integers(0, 2))
        common = {
            "prediction_id": f"{model}-{i}",
            "model": model,
            "version": version,
            "unit_id": f"{model}-{i}",
            "event_time": T0 + timedelta(milliseconds=3 * i),
            "latency_ms": 1.0,
        }
        if i % 50 == 0:
            out.append(PredictionLogged(**common, error_type="timeout"))
            continue
        pred = y if rng.random() < (0.9 if version == "v1" else 0.6) else 1 - y
        out.append(PredictionLogged(**common, prediction=pred, features=features))
    return out


def _partition(e: PredictionLogged) -> int:
    return zlib.crc32(e.prediction_id.encode()) % PARTITIONS


def _backlog_order(events: list[PredictionLogged]) -> list[PredictionLogged]:
    """What a worker catching up on a backlog gets: one partition after the other."""
    return sorted(events, key=_partition)  # stable: each partition keeps its order


def _feed(
    proc: DriftProcessor, state: DriftState, events: list[PredictionLogged], batch: int = 100
) -> list[Output]:
    out: list[Output] = []
    for k in range(0, len(events), batch):
        part = events[k : k + batch]
        out += proc.handle_batch(part, state, [_partition(e) for e in part])
    return out


def _amount_verdicts(outputs: Sequence[object]) -> dict[str, tuple[bool, float]]:
    return {
        o.version: (
            o.verdict.feature_results()["amount"].drift_detected,
            o.verdict.drifted_share,
        )
        for o in outputs
        if isinstance(o, WindowReport)
    }


def test_backlog_read_partition_by_partition_still_flags_the_shift() -> None:
    config = DriftConfig(window_events=200, warmup_events=200)
    proc = DriftProcessor(config)
    state = DriftState()
    proc.assign(state, range(PARTITIONS))
    out = _feed(proc, state, _backlog_order(_dashboard_stream()))
    learned = {o.reference.version: o.reference for o in out if isinstance(o, ReferenceLearned)}
    assert set(learned) == {"v1", "v2"}
    for ref in learned.values():  # learned from the clean traffic only
        amount = ref.features["amount"]
        assert abs(amount.mean) < 0.3 and amount.maximum < 4.0  # type: ignore[union-attr]
    verdicts = _amount_verdicts(out)
    assert verdicts == {"v1": (True, 0.5), "v2": (True, 0.5)}
    flagged = [s for s in out if isinstance(s, DriftSignal) and s.test == "ks" and s.drift_detected]
    assert {(s.version, s.feature) for s in flagged} == {("v1", "amount"), ("v2", "amount")}

    # the same reference and verdicts as one ordered stream (files, time order)
    ordered = DriftProcessor(config).run(_dashboard_stream(), flush=False)
    ordered_refs = {
        o.reference.version: o.reference for o in ordered if isinstance(o, ReferenceLearned)
    }
    assert {v: r.reference_id for v, r in learned.items()} == {
        v: r.reference_id for v, r in ordered_refs.items()
    }
    assert _amount_verdicts(ordered) == verdicts


def test_warmup_waits_for_every_partition_or_for_it_to_be_read_to_its_end() -> None:
    proc = DriftProcessor(DriftConfig(window_events=200, warmup_events=200))
    state = DriftState()
    proc.assign(state, range(PARTITIONS + 1))  # partition 3 never gets a prediction
    out = _feed(proc, state, _backlog_order(_dashboard_stream()))
    assert not [o for o in out if isinstance(o, ReferenceLearned)]
    assert proc.warming_up(state)
    # partition 3 is empty and read to its end: nothing older can arrive any more
    out = proc.caught_up(state, [PARTITIONS])
    learned = [o.reference for o in out if isinstance(o, ReferenceLearned)]
    assert len(learned) == 2 and not proc.warming_up(state)
    assert all(abs(r.features["amount"].mean) < 0.3 for r in learned)  # type: ignore[union-attr]
    assert _amount_verdicts(out) == {"v1": (True, 0.5), "v2": (True, 0.5)}


def test_warmup_buffer_is_bounded_and_keeps_the_earliest() -> None:
    proc = DriftProcessor(DriftConfig(window_events=200, warmup_events=200, warmup_buffer_factor=2))
    state = DriftState()
    proc.assign(state, range(PARTITIONS + 1))
    _feed(proc, state, _backlog_order(_dashboard_stream()))
    kept = state.warmup[("dash", "v1")]
    assert len(kept) == 400 and state.warmup_dropped == 2 * (500 - 400)
    assert max(o.event_time for o in kept) < min(
        e.event_time for e in _dashboard_stream()[-100:] if e.version == "v1"
    )
