"""Reference profiles, sequential detectors and window tests (pure core)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.contracts.common import Severity
from modelguard.core.drift.accumulators import NumericAccumulator, WindowAccumulator
from modelguard.core.drift.evaluation import evaluate_window
from modelguard.core.drift.reference import (
    ReferenceDataError,
    ReferenceProfile,
    build_profile,
    categorical_profile,
    numeric_profile,
)
from modelguard.core.drift.sequential import (
    LLRCusum,
    NumericDriftDetector,
    SlidingWindowChi2,
    SlidingWindowKS,
)


def _ref(seed: int = 0, n: int = 5000) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return build_profile(
        {
            "x": list(rng.normal(size=n)),
            "y": list(rng.exponential(size=n)),
            "c": list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=n)),
        },
        model="m",
        version="v1",
    )


def test_profile_roundtrip_and_content_id() -> None:
    ref = _ref()
    back = ReferenceProfile.from_json(ref.to_json())
    assert back == ref
    assert back.reference_id == ref.reference_id
    assert _ref(seed=1).reference_id != ref.reference_id
    assert "NaN" not in ref.to_json()


def test_profile_rejects_malformed_json() -> None:
    with pytest.raises(ReferenceDataError, match="not valid JSON"):
        ReferenceProfile.from_json("{")
    body = json.loads(_ref().to_json())
    body["features"]["x"]["counts"][0] = 0
    with pytest.raises(ReferenceDataError, match="'x'"):
        ReferenceProfile.from_dict(body)


def test_numeric_profile_bins_hold_reference_mass_with_ties() -> None:
    p = numeric_profile([1, 1, 1, 2, 2, 3, 10] * 50)
    assert all(c > 0 for c in p.counts)
    assert sum(p.counts) == p.n == 350
    z = p.normal_scores()
    probs = p.probabilities
    assert float(np.sum(probs * z)) == pytest.approx(0.0, abs=1e-9)
    assert float(np.sum(probs * z * z)) == pytest.approx(1.0, abs=1e-9)


def test_categorical_profile_other_bucket() -> None:
    p = categorical_profile(["a"] * 5 + ["b"] * 3 + ["c"], max_categories=2)
    assert p.categories == ("a", "b") and p.counts == (5, 3, 1) and p.has_other


def _first_alarm(det: NumericDriftDetector | SlidingWindowKS | LLRCusum, xs: np.ndarray) -> int:
    alarms = det.update_many(xs).alarms
    return alarms[0].index if alarms else -1


def test_numeric_detector_quiet_on_null_and_fast_on_shift() -> None:
    ref = _ref().features["x"]
    rng = np.random.default_rng(7)
    quiet = sum(
        _first_alarm(NumericDriftDetector(ref), rng.normal(size=5000)) >= 0 for _ in range(10)
    )
    assert quiet <= 1
    delays = []
    for _ in range(10):
        xs = np.concatenate([rng.normal(size=500), rng.normal(1.0, 1, size=1000)])
        alarms = [a for a in NumericDriftDetector(ref).update_many(xs).alarms if a.index >= 500]
        delays.append(alarms[0].index - 500)
    assert np.median(delays) < 60  # a 1-sigma shift is found within tens of events


def test_single_updates_equal_batch_updates() -> None:
    ref = _ref().features["x"]
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.normal(size=400), rng.normal(2, 1, size=400)])
    batch = SlidingWindowKS(ref, window=100)
    single = SlidingWindowKS(ref, window=100)
    batch_alarms = {a.index for a in batch.update_many(xs).alarms}
    single_alarms = {i for i, x in enumerate(xs) if single.update(float(x)).drift_detected}
    assert batch_alarms and batch_alarms == single_alarms
    c1, c2 = LLRCusum(ref), LLRCusum(ref)
    assert {a.index for a in c1.update_many(xs).alarms} == {
        i for i, x in enumerate(xs) if c2.update(float(x)).drift_detected
    }


def test_cusum_scale_detector_catches_variance_increase() -> None:
    ref = _ref().features["x"]
    rng = np.random.default_rng(11)
    det = LLRCusum(ref)
    alarms = det.update_many(np.concatenate([rng.normal(size=300), rng.normal(0, 2, 600)])).alarms
    assert alarms and alarms[0].test == "cusum_scale_up" and alarms[0].index >= 300


def test_chi2_window_detects_frequency_change_and_ignores_unseen() -> None:
    ref = _ref().features["c"]
    rng = np.random.default_rng(5)
    det = SlidingWindowChi2(ref)  # type: ignore[arg-type]
    null = list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=3000))
    assert det.update_many(null + ["zzz"] * 50).alarms == []
    shifted = list(rng.choice(["a", "b", "c"], p=[0.3, 0.3, 0.4], size=1500))
    alarms = det.update_many(shifted).alarms
    assert alarms and alarms[0].index < 600


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(-5, 5), st.integers(-3, 3), st.text(max_size=3)), max_size=60
    ),
    st.integers(0, 60),
)
def test_accumulator_merge_of_partials_equals_whole(values: list[object], cut: int) -> None:
    prof = _ref().features["x"]
    assert not isinstance(prof, type(None))
    whole = NumericAccumulator.empty(prof)  # type: ignore[arg-type]
    whole.add(prof, values)  # type: ignore[arg-type]
    a = NumericAccumulator.empty(prof)  # type: ignore[arg-type]
    b = NumericAccumulator.empty(prof)  # type: ignore[arg-type]
    a.add(prof, values[:cut])  # type: ignore[arg-type]
    b.add(prof, values[cut:])  # type: ignore[arg-type]
    merged = a.merge(b)
    assert merged.to_dict()["counts"] == whole.to_dict()["counts"]
    assert np.allclose(merged.sums, whole.sums)
    assert (merged.missing, merged.type_errors, merged.below, merged.above) == (
        whole.missing,
        whole.type_errors,
        whole.below,
        whole.above,
    )


def _window(ref: ReferenceProfile, rows: dict[str, list[object]]) -> WindowAccumulator:
    acc = WindowAccumulator.empty(ref)
    for name, values in rows.items():
        acc.features[name].add(ref.features[name], values)  # type: ignore[arg-type]
    acc.n_events = max(len(v) for v in rows.values())
    return acc


def test_window_needs_significance_and_effect() -> None:
    ref = _ref(n=20000)
    rng = np.random.default_rng(2)
    n = 200_000
    # a trivial 0.03-sigma shift on a huge sample: significant but not practical
    acc = _window(
        ref,
        {
            "x": list(rng.normal(0.03, 1, n)),
            "y": list(rng.exponential(size=n)),
            "c": list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=n)),
        },
    )
    v = evaluate_window(ref, acc)
    x = v.feature_results()["x"]
    assert x.p_value is not None and x.p_value < 1e-3
    assert not x.drift_detected and x.severity == Severity.NONE


def test_window_flags_shift_quality_and_dataset_share() -> None:
    ref = _ref()
    rng = np.random.default_rng(4)
    n = 3000
    y: list[object] = list(rng.exponential(size=n))
    y[:300] = [None] * 300  # 10 % missing
    y[300:330] = ["oops"] * 30  # type errors
    c = list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=n))
    c[:90] = ["new"] * 90
    acc = _window(ref, {"x": list(rng.normal(0.7, 1, n)), "y": y, "c": c})
    v = evaluate_window(ref, acc)
    feats = v.feature_results()
    assert feats["x"].drift_detected and feats["x"].severity >= Severity.HIGH
    # a new category in 3 % of rows is drift of "c" too (issue 12 #8), not only quality
    assert not feats["y"].drift_detected and feats["c"].drift_detected
    quality = {(r.feature, r.test) for r in v.by_kind("quality") if r.drift_detected}
    assert quality == {("y", "missing_rate"), ("y", "type_errors"), ("c", "unseen_categories")}
    assert v.drifted_share == pytest.approx(2 / 3) and v.dataset_drift
