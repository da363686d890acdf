"""Every sequential drift detector of ``modelguard.core.drift`` through the detector
contract (:class:`modelguard.core.drift.detector.Detector`, river style): one update at
a time equals the batch update, the state survives a strict-JSON round trip, a seeded
null stream raises no alarm, a clear shift does, and after an alarm the detector
restarts and keeps working."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import modelguard.core.drift as drift_pkg
from modelguard.core.drift import (
    ConceptDetector,
    Detector,
    LLRCusum,
    NumericDriftDetector,
    SlidingWindowChi2,
    SlidingWindowKS,
)
from modelguard.core.drift.reference import categorical_profile, numeric_profile

Rng = np.random.Generator
CATS = np.array(["a", "b", "c"])
P_NULL, P_SHIFT = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
# stream lengths are multiples of the window tests' stride (8): a single-value KS
# update buffers values until the next check, so both paths end on a check
NULL, SHIFT = 2_000, 1_000


@dataclass(frozen=True)
class Case:
    """How to build one detector and draw its null and shifted values."""

    name: str
    make: Callable[[Rng], Any]
    null: Callable[[Rng, int], Any]
    shifted: Callable[[Rng, int], Any]
    one: Callable[[Any], Any]  # a batch element as the value ``update`` takes
    #: what the caller does once the stream is back to normal (the drift processor
    #: settles the concept detector at every window close)
    settle: Callable[[Any], object] = lambda det: None


def _normal_ref(rng: Rng) -> Any:
    return numeric_profile(list(rng.normal(size=5_000)))


def _cat_ref(rng: Rng) -> Any:
    return categorical_profile(list(rng.choice(CATS, p=P_NULL, size=5_000)))


def _normal(rng: Rng, n: int) -> Any:
    return rng.normal(size=n)


def _normal_shift(rng: Rng, n: int) -> Any:
    return rng.normal(1.5, 1.0, size=n)


def _cats(p: list[float]) -> Callable[[Rng, int], list[str]]:
    return lambda rng, n: [str(c) for c in rng.choice(CATS, p=p, size=n)]


def _errors(rate: float) -> Callable[[Rng, int], Any]:
    return lambda rng, n: (rng.random(n) < rate).astype(np.float64)


CASES = [
    Case("ks_window", lambda r: SlidingWindowKS(_normal_ref(r)), _normal, _normal_shift, float),
    Case("llr_cusum", lambda r: LLRCusum(_normal_ref(r)), _normal, _normal_shift, float),
    Case(
        "numeric_default",
        lambda r: NumericDriftDetector(_normal_ref(r)),
        _normal,
        _normal_shift,
        float,
    ),
    Case(
        "chi2_window",
        lambda r: SlidingWindowChi2(_cat_ref(r)),
        _cats(P_NULL),
        _cats(P_SHIFT),
        str,
    ),
    Case(
        "concept_adwin",
        lambda r: ConceptDetector(delta=0.002, baseline_labels=500),
        _errors(0.1),
        _errors(0.4),
        float,
        ConceptDetector.settle,
    ),
]
IDS = [c.name for c in CASES]


def _concat(a: Any, b: Any) -> Any:
    return a + b if isinstance(a, list) else np.concatenate([a, b])


def _stream(case: Case, seed: int = 1) -> tuple[Any, Any]:
    """A fresh detector and a stream: NULL null values, then SHIFT shifted ones."""
    rng = np.random.default_rng(seed)
    det = case.make(rng)
    return det, _concat(case.null(rng, NULL), case.shifted(rng, SHIFT))


def _single(case: Case, det: Any, xs: Any) -> list[tuple[int, str]]:
    """Feed ``xs`` one by one: (position, test) of every alarm."""
    out: list[tuple[int, str]] = []
    for i, x in enumerate(xs):
        assert det.update(case.one(x)) is det
        if det.drift_detected:
            out.extend((i, getattr(a, "test", "concept")) for a in det.alarms)
    return out


def _batch(det: Any, xs: Any) -> list[tuple[int, str]]:
    assert det.update_many(xs) is det
    return [(a.index, getattr(a, "test", "concept")) for a in det.alarms]


def _approx(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_approx(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_approx(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _strict_json(d: dict[str, Any]) -> str:
    return json.dumps(d, allow_nan=False, sort_keys=True)


def test_every_sequential_detector_of_the_package_is_covered() -> None:
    found = set()
    for info in pkgutil.iter_modules(drift_pkg.__path__):
        module = importlib.import_module(f"{drift_pkg.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            concrete = not inspect.isabstract(cls) and not getattr(cls, "_is_protocol", False)
            detector = hasattr(cls, "update_many") and hasattr(cls, "drift_detected")
            if cls.__module__ == module.__name__ and concrete and detector:
                found.add(cls)
    covered = {type(c.make(np.random.default_rng(0))) for c in CASES}
    assert found == covered


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_follows_the_protocol_and_drift_detected_is_read_only(case: Case) -> None:
    det = case.make(np.random.default_rng(0))
    assert isinstance(det, Detector)
    assert det.drift_detected is False and list(det.alarms) == []
    with pytest.raises(AttributeError):
        det.drift_detected = True
    assert inspect.getdoc(type(det)) and ">>>" in (type(det).__doc__ or "")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_single_updates_equal_the_batch_update(case: Case) -> None:
    single, xs = _stream(case)
    batch, _ = _stream(case)
    one_by_one = _single(case, single, xs)
    at_once = _batch(batch, xs)
    assert at_once and one_by_one == at_once
    assert single.drift_detected == batch.drift_detected
    # equal state; sums may differ in the last bit (a running sum against cumsum)
    assert _approx(single.to_dict(), batch.to_dict())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_survives_a_strict_json_round_trip(case: Case) -> None:
    live, xs = _stream(case)
    cut = NULL // 2  # within ADWIN's replay buffer and before any cut
    _batch(live, xs[:cut])
    text = _strict_json(live.to_dict())
    restored = type(live).from_dict(json.loads(text))
    assert _strict_json(restored.to_dict()) == text
    rest = xs[cut:]
    assert _batch(restored, rest) == _batch(live, rest)
    assert restored.to_dict() == live.to_dict()
    _strict_json(live.to_dict())  # still strict JSON after alarms


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("seed", [11, 12])
def test_quiet_on_a_null_stream(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    det = case.make(rng)
    assert _batch(det, case.null(rng, 10_000)) == []
    assert not det.drift_detected


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_detects_a_clear_shift(case: Case) -> None:
    det, xs = _stream(case)
    alarms = _batch(det, xs)
    assert alarms, "no alarm on a clear shift"
    assert all(i >= NULL for i, _ in alarms)  # none before the shift
    assert alarms[0][0] < NULL + SHIFT // 2  # found within half the shifted segment


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_restarts_after_an_alarm_and_keeps_working(case: Case) -> None:
    rng = np.random.default_rng(5)
    det = case.make(rng)
    _batch(det, case.null(rng, NULL))
    shifted = case.shifted(rng, SHIFT)
    first = None
    for i, x in enumerate(shifted):
        if det.update(case.one(x)).drift_detected:
            first = i
            break
    assert first is not None
    # the alarm is of the update that raised it: the next value starts afresh
    det.update(case.one(shifted[first + 1]))
    assert not det.drift_detected and list(det.alarms) == []
    # back to the reference, then a new shift: the detector alarms again
    _batch(det, case.null(rng, 4 * NULL))
    case.settle(det)
    again = _batch(det, case.shifted(rng, SHIFT))
    assert again, "no alarm on a second shift after the first alarm"
