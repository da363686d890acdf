"""The SDK encoder's fast path (names remembered, builtin checks, orjson) accepts
nothing the contract rejects and encodes what it accepts to the same event. Oracle:
the pydantic contract models."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from modelguard.contracts.base import Identifier, Name
from modelguard.contracts.codec import decode_event
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.sdk import InvalidEventError, PredictionEncoder
from modelguard.sdk import encode as enc_module
from tests.support.sdk import PREDICTION_ARGS, T, agrees

BASE: dict[str, Any] = {**PREDICTION_ARGS, "features": {"amount": 12.5, "n": 3}}


def test_identifier_check_is_never_looser_than_the_contract() -> None:
    identifier, name = TypeAdapter(Identifier), TypeAdapter(Name)
    accepted = 0
    for cp in range(sys.maxunicode + 1):
        s = "a" + chr(cp)
        if enc_module._is_id(s):
            accepted += 1
            identifier.validate_python(s)  # raises if the fast check was too loose
        if enc_module._is_name(s):
            name.validate_python(s)
    assert accepted > 100_000  # and it takes the fast path for ordinary text
    assert not enc_module._is_id("a" * (LIMITS.max_id_length + 1))
    assert not enc_module._is_id("") and not enc_module._is_id("a b")


@pytest.mark.parametrize(
    "change",
    [
        {"features": {"big": 2**70, "x": 1.5}},  # beyond the bounds (and orjson's 64 bits)
        {"features": {"a": 2.0**53, "b": -(2.0**53), "c": 2**53}},  # at the bounds
        {"features": {"a": 1e308, "b": 1e308}},
        {"event_time": datetime(2100, 1, 1, tzinfo=UTC)},  # past the event-time bounds
        {"event_time": datetime(1969, 12, 31, 23, 0, tzinfo=UTC)},
        {"features": {"flag": True}},  # a bool is not a feature value
        {"features": {"x": math.inf}},
        {"features": {"x": None, "s": "text", "i": -3}},
        {"probabilities": {"0": 0, "1": 1}},  # ints: valid, through the contract
        {"probabilities": {"0": math.nan, "1": 1.0}},
        {"probabilities": {"0": 0.5, "1": 0.5004}},  # within the contract's tolerance
        {"prediction": 2**80},
        {"score": 0.5, "experiment_id": "exp-1", "stage_latency_ms": {"inference": 2.0}},
        {"error_type": "timeout", "prediction": None},
        {"unit_id": "ünït-ß"},
        {"prediction_id": "p\u200b1"},  # a format character: the contract's path
    ],
)
def test_edge_values_agree_with_the_contract(change: dict[str, Any]) -> None:
    agrees(PredictionLogged, PredictionEncoder().encode, {**BASE, **change})


def test_remembered_names_do_not_lift_the_feature_limit() -> None:
    enc = PredictionEncoder()
    half = LIMITS.max_features // 2 + 10
    for part in range(2):  # every name below becomes known, in two valid events
        names = {f"f{part * half + i}": 1.0 for i in range(half)}
        enc.encode(**{**BASE, "features": names})
    too_many = {f"f{i}": 1.0 for i in range(LIMITS.max_features + 1)}
    with pytest.raises(InvalidEventError, match="features"):
        enc.encode(**{**BASE, "features": too_many})


class _Odd(tzinfo):
    """A tzinfo class orjson does not know."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_unusual_tzinfo_is_encoded_by_the_fallback() -> None:
    args = {**BASE, "event_time": datetime(2026, 1, 1, 13, 0, tzinfo=_Odd())}
    agrees(PredictionLogged, PredictionEncoder().encode, args)


def test_labels_use_the_same_encoder() -> None:
    enc = PredictionEncoder()
    top = int(LIMITS.max_abs_number)
    key, value = enc.encode_label(prediction_id="p1", label=top, event_time=T, model="fraud")
    assert key == b"p1"
    assert decode_event(LabelObserved, value).label == top
    with pytest.raises(InvalidEventError, match="label"):
        enc.encode_label(prediction_id="p1", label=2 * top, event_time=T)


# -- property: one encoder across many calls (its name caches in play) ---------------
SHARED = PredictionEncoder()
names = st.one_of(st.sampled_from(["a", "b", "x y", "", "ü"]), st.text(max_size=4))
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53, 2**53 + 1, -(2**53), 2.0**53, 9.1e15]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(
    features=st.dictionaries(names, values, max_size=5),
    probabilities=st.one_of(
        st.none(),
        st.dictionaries(names, st.one_of(st.floats(-0.1, 1.1), st.integers(0, 1)), max_size=3),
    ),
    model=st.sampled_from(["fraud", "churn", "bad model", ""]),
    task=st.sampled_from(["classification", "regression", "ranking"]),
    prediction=st.one_of(st.none(), st.integers(0, 3), st.floats(), st.just("cat")),
    latency_ms=st.one_of(st.floats(-1, 5), st.integers(0, 5), st.just(True)),
)
def test_a_long_lived_encoder_agrees_with_the_contract(**kwargs: Any) -> None:
    agrees(PredictionLogged, SHARED.encode, {**BASE, **kwargs})
