"""Workers test their own partitions (ADR 0008): each sees a random share of a model's
traffic (keys are prediction ids), closes windows of its own events, and together they
spend the model's false-alarm budget once, not once per worker."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import numpy as np

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState, WindowReport
from modelguard.core.drift.accumulators import WindowAccumulator
from modelguard.core.drift.evaluation import evaluate_window
from modelguard.core.drift.reference import build_profile
from modelguard.core.drift.sequential import NumericDriftDetector

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WORKERS = 3
CONFIG = DriftConfig(window_events=2000)


def _stream(rng: np.random.Generator, n: int, start: int, shift: float) -> list[PredictionLogged]:
    return [
        PredictionLogged(
            prediction_id=f"p{start + i}",
            model="m",
            version="v1",
            unit_id="u",
            event_time=T0 + timedelta(milliseconds=start + i),
            features={"amount": float(rng.normal(shift, 1)), "age": float(rng.normal(40, 9))},
            prediction=int(rng.integers(0, 2)),
            latency_ms=1.0,
        )
        for i in range(n)
    ]


def _worker_of(e: PredictionLogged) -> int:
    return zlib.crc32(e.prediction_id.encode()) % WORKERS


def test_workers_spend_the_model_budget_once_and_each_detects_a_shift() -> None:
    rng = np.random.default_rng(4)
    ref_rng = np.random.default_rng(5)
    reference = build_profile(
        {"amount": list(ref_rng.normal(0, 1, 5000)), "age": list(ref_rng.normal(40, 9, 5000))},
        model="m",
        version="v1",
    )
    quiet, shifted = _stream(rng, 24_000, 0, 0.0), _stream(rng, 9_000, 24_000, 0.5)
    procs = [DriftProcessor(CONFIG, worker=f"w{w}") for w in range(WORKERS)]
    states = [DriftState() for _ in range(WORKERS)]
    outs: list[list[object]] = [[] for _ in range(WORKERS)]
    for w, (proc, state) in enumerate(zip(procs, states, strict=True)):
        proc.set_reference(state, reference)
        mine = [e for e in quiet if _worker_of(e) == w]
        assert 0.3 < len(mine) / len(quiet) < 0.37  # a random third of the traffic
        outs[w] += proc.run(mine, state, flush=False)
    # Null traffic: as many tested windows in all as one worker seeing everything would
    # run (24,000 / 2,000 = 12), not 3 x 12, and no false alarm anywhere.
    windows = [[o for o in out if isinstance(o, WindowReport)] for out in outs]
    assert 12 - WORKERS < sum(map(len, windows)) <= 12
    assert not [s for out in outs for s in out if isinstance(s, DriftSignal) and s.drift_detected]
    # The sequential thresholds do not depend on the share: a worker seeing s of the
    # traffic covers the horizon in s times fewer model events, so its alarm probability
    # per horizon of model events is s x alpha, and the workers sum to alpha.
    thresholds = {
        (d.ks.threshold, d.cusum.threshold)
        for state in states
        for mon in state.monitors.values()
        for d in mon.numeric.values()
    }
    alone = NumericDriftDetector(reference.features["amount"], alpha=0.05 / 2)  # type: ignore[arg-type]
    assert thresholds == {(alone.ks.threshold, alone.cusum.threshold)}

    # A 0.5 sigma shift: every worker's next window flags it on its own share.
    for w, (proc, state) in enumerate(zip(procs, states, strict=True)):
        closed = proc.run([e for e in shifted if _worker_of(e) == w], state, flush=False)
        reports = [o for o in closed if isinstance(o, WindowReport)]
        assert reports and reports[-1].verdict.feature_results()["amount"].drift_detected
        assert not reports[-1].verdict.feature_results()["age"].drift_detected

    # The partials are exact: the workers' accumulators of one window merge into the
    # accumulator of all its events, so a merge stage would test the whole window.
    parts = [WindowAccumulator.empty(reference) for _ in range(WORKERS)]
    whole = WindowAccumulator.empty(reference)
    for e in shifted[:3000]:
        for acc in (parts[_worker_of(e)], whole):
            acc.n_events += 1
            for name, prof in reference.features.items():
                acc.features[name].add(prof, [e.features[name]])  # type: ignore[arg-type]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.to_dict()["n_events"] == whole.to_dict()["n_events"] == 3000
    for name in reference.features:
        assert (
            merged.to_dict()["features"][name]["counts"]
            == whole.to_dict()["features"][name]["counts"]
        )
    verdict = evaluate_window(reference, merged, CONFIG.evaluation)
    assert verdict.feature_results()["amount"].drift_detected
