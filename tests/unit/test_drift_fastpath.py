"""The drift processor's fast paths (issue 15) give exactly what the plain paths give:
the stacked scans of a model's numeric detectors (QuietScan, CusumScan), a KS window's
single-check path, the columnar feature conversion, the bulk bookkeeping of pending
predictions and the KS p-value without scipy's argument checks. Oracles: the detectors'
own full scans, the per-column accumulator, scipy's ``kstwo.sf``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import kstwo

from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState, Observation
from modelguard.core.drift.accumulators import NumericAccumulator, numeric_columns
from modelguard.core.drift.cusum import CusumScan, LLRCusum
from modelguard.core.drift.reference import NumericProfile, build_profile, numeric_profile
from modelguard.core.drift.sliding_window import QuietScan, SlidingWindowKS, _WindowTest
from modelguard.core.drift.stats import ks_pvalue


def _references(rng: np.random.Generator, k: int) -> list[NumericProfile]:
    out = []
    for i in range(k):
        if i % 4 == 3:  # ties: fewer bins than the others
            out.append(numeric_profile(list(rng.integers(0, 12, size=3_000).astype(float))))
        else:
            out.append(numeric_profile(list(rng.normal(size=int(rng.integers(500, 6_000))))))
    return out


def _draw(rng: np.random.Generator, ref: NumericProfile, n: int, shift: float) -> np.ndarray:
    if ref.n_bins < 50:
        return rng.integers(0, 12 + int(3 * shift), size=n).astype(float)
    return rng.normal(shift, 1.0 + shift / 3, size=n)


def _same_ks(a: SlidingWindowKS, b: SlidingWindowKS) -> None:
    assert a.state_dict() == b.state_dict()
    assert a.alarms == b.alarms and a.drift_detected == b.drift_detected
    assert a.statistic == b.statistic
    assert np.array_equal(a._hist.counts, b._hist.counts)


def _same_cusum(a: LLRCusum, b: LLRCusum) -> None:
    assert a.state_dict() == b.state_dict() and a.alarms == b.alarms
    assert a.statistic == b.statistic and a.drift_detected == b.drift_detected


def _feed_scanned(
    scan: QuietScan | CusumScan,
    fast: Sequence[Any],
    full: Sequence[Any],
    bins: npt.NDArray[np.intp],
    update: Callable[[Any, npt.NDArray[np.intp]], object],
    same: Callable[[Any, Any], None],
) -> tuple[int, int]:
    """Feed row ``i`` of ``bins`` to ``fast[i]`` through ``scan`` (its quiet path, else
    ``update``) and to its twin ``full[i]`` through ``update``, and check ``same``.
    Returns (detectors the quiet path fed, alarms)."""
    quiet = alarms = 0
    for i, (d, twin) in enumerate(zip(fast, full, strict=True)):
        if scan.quiet[i]:
            scan.commit(i)
            quiet += 1
        else:
            update(d, bins[i])
        update(twin, bins[i])
        same(d, twin)
        alarms += len(twin.alarms)
    return quiet, alarms


@pytest.mark.parametrize(("seed", "window", "stride"), [(1, 300, 8), (2, 50, 5), (3, 301, 1)])
def test_quiet_scan_of_several_windows_equals_their_full_scans(
    seed: int, window: int, stride: int
) -> None:
    rng = np.random.default_rng(seed)
    refs = _references(rng, 6)
    tests = [SlidingWindowKS(r, window=window, stride=stride, alpha=1e-3) for r in refs]
    twins = copy.deepcopy(tests)
    quiet = alarms = 0
    for step in range(90):
        shift = (0.0, 0.4, 1.5)[(step // 15) % 3]
        if step % 7 == 0:  # windows at different phases and fill levels
            for t, u, r in zip(tests[::2], twins[::2], refs[::2], strict=True):
                b = r.bin_of(_draw(rng, r, int(rng.integers(1, 40)), 0.0))
                _WindowTest._update_bins(t, b)
                _WindowTest._update_bins(u, b)
        n = int(rng.choice([1, 8, 9, 299, 1_000, int(rng.integers(1, 1_500))]))
        bins = np.stack([r.bin_of(_draw(rng, r, n, shift)) for r in refs])
        q, a = _feed_scanned(
            QuietScan(tests, bins), tests, twins, bins, _WindowTest._update_bins, _same_ks
        )
        quiet, alarms = quiet + q, alarms + a
    assert quiet > 100 and alarms > 10  # both paths exercised


@pytest.mark.parametrize("seed", [1, 2])
def test_ks_window_fast_paths_equal_the_full_scan(seed: int) -> None:
    """The window's own paths (one check alone, the quiet scan of one window)."""
    rng = np.random.default_rng(seed)
    ref = _references(rng, 1)[0]
    fast = SlidingWindowKS(ref, alpha=1e-3)
    full = copy.deepcopy(fast)
    for step in range(300):
        n = int(rng.choice([1, 3, 7, 8, 9, 300, 1_000]))
        bins = ref.bin_of(_draw(rng, ref, n, (0.0, 1.0)[(step // 40) % 2]))
        fast._update_bins(bins)
        _WindowTest._update_bins(full, bins)
        _same_ks(fast, full)


def test_cusum_scan_equals_each_cusum_alone() -> None:
    rng = np.random.default_rng(4)
    refs = _references(rng, 6)
    cusums = [LLRCusum(r, alpha=0.01) for r in refs]
    twins = copy.deepcopy(cusums)
    quiet = alarms = 0
    for step in range(120):
        shift = (0.0, 0.3, 1.5)[(step // 20) % 3]
        n = int(rng.choice([1, 100, 1_000, int(rng.integers(1, 1_500))]))
        bins = np.stack([r.bin_of(_draw(rng, r, n, shift)) for r in refs])
        q, a = _feed_scanned(
            CusumScan(cusums, bins), cusums, twins, bins, LLRCusum._update_bins, _same_cusum
        )
        quiet, alarms = quiet + q, alarms + a
    assert quiet > 100 and alarms > 10


@pytest.mark.parametrize("validated", [True, False])
def test_numeric_columns_count_as_the_accumulator_counts(validated: bool) -> None:
    rng = np.random.default_rng(5)
    ref = numeric_profile(list(rng.normal(size=2_000)))
    rows: list[dict[str, object]] = [
        {"a": float(v), "b": int(rng.integers(-5, 5))} for v in rng.normal(size=500)
    ]
    rows[3]["a"] = None
    rows[7]["b"] = 2**60 + 1
    rows[9]["a"] = float("nan") if not validated else 0.0
    cols = numeric_columns(rows, ("a", "b"), validated)
    assert cols is not None and cols.shape == (2, 500)
    for j, name in enumerate(("a", "b")):
        plain, fast = NumericAccumulator.empty(ref), NumericAccumulator.empty(ref)
        x = plain.add(ref, [r.get(name) for r in rows])
        y = cols[j][np.isfinite(cols[j])]
        fast.add_finite(ref, y, ref.bin_of(y), len(rows) - y.size)
        assert np.array_equal(x, y) and fast.to_dict() == plain.to_dict()


@pytest.mark.parametrize(
    "odd", ["1.5", True, 10**400, np.float32(1.0)], ids=["str", "bool", "huge", "np32"]
)
def test_numeric_columns_leave_anything_unusual_to_the_accumulator(odd: object) -> None:
    rows: list[dict[str, object]] = [{"a": 1.0, "b": 2} for _ in range(10)]
    rows[4]["b"] = odd
    assert numeric_columns(rows, ("a", "b")) is None
    assert numeric_columns([{"a": 1.0}, {"b": 1.0}], ("a",)) is None  # absent key


def _events(n: int, shift_at: int) -> list[PredictionLogged]:
    rng = np.random.default_rng(6)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        mu = 0.0 if i < shift_at else 1.0
        feats: dict[str, float | int | str | None] = {
            f"f{j}": float(rng.normal(mu if j % 2 else 0.0)) for j in range(4)
        }
        feats["k"] = int(rng.integers(0, 50))
        feats["c"] = str(rng.choice(["x", "y", "z"]))
        if i % 97 == 0:
            feats["f1"] = None
        out.append(
            PredictionLogged(
                prediction_id=f"p{i}",
                model="m",
                version="v1",
                unit_id="u",
                event_time=t0 + timedelta(milliseconds=10 * i),
                features=feats,
                prediction=int(rng.integers(0, 2)),
                probabilities={"0": 0.4, "1": 0.6},
                latency_ms=1.0,
            )
        )
    return out


def test_the_processor_gives_the_same_outputs_from_events_and_from_observations() -> None:
    """PredictionLogged batches take the columnar fast paths (validated values, bulk
    pending); the same predictions as Observations take the careful ones."""
    events = _events(9_000, 6_000)
    observations = [Observation.from_event(e) for e in events]
    rng = np.random.default_rng(7)
    cols: dict[str, list[object]] = {f"f{j}": list(rng.normal(size=3_000)) for j in range(4)}
    cols["k"] = [int(v) for v in rng.integers(0, 50, size=3_000)]
    cols["c"] = [str(v) for v in rng.choice(["x", "y", "z"], size=3_000)]
    reference = build_profile(cols, model="m", version="v1")
    results = []
    for stream in (events, observations):
        proc = DriftProcessor(DriftConfig(window_events=2_000))
        state = DriftState()
        proc.set_reference(state, reference)
        out = []
        for k in range(0, len(stream), 700):
            out += proc.handle_batch(stream[k : k + 700], state)
        results.append((out, list(state.pending.items())))
    assert results[0] == results[1]
    assert any(getattr(o, "test", "").startswith("cusum") for o in results[0][0])


def test_ks_pvalue_is_scipys_kstwo_sf() -> None:
    rng = np.random.default_rng(8)
    for d in [0.0, 1.0, 1e-9, 0.9999, *rng.random(200), *(rng.random(200) * 0.05)]:
        n, m = int(rng.integers(1, 6_000)), int(rng.integers(1, 6_000))
        en = max(1.0, round(max(n, m) * min(n, m) / (n + m)))
        assert ks_pvalue(float(d), n, m) == float(np.clip(kstwo.sf(float(d), en), 0.0, 1.0))
