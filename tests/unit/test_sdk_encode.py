"""SDK fast encoding agrees with the contracts (oracle: the pydantic models), and
invalid arguments raise errors naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.contracts.codec import decode_event
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.sdk import InvalidEventError, LatencyTimer, PredictionEncoder
from tests.support.sdk import PREDICTION_ARGS, T, agrees

BASE: dict[str, Any] = {
    **PREDICTION_ARGS,
    "features": {"amount": 12.5, "country": "DE", "n": 3, "missing": None},
}


def test_valid_prediction_roundtrips_through_the_contract() -> None:
    key, value = PredictionEncoder().encode(**BASE)
    event = decode_event(PredictionLogged, value)
    assert key == b"p1"
    assert event == PredictionLogged.model_validate(BASE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": {"amount": math.nan}}, "features.amount: Input should be a finite number"),
        ({"features": {"bad key": 1}}, "features"),
        ({"model": "bad model"}, "model: String should match pattern"),
        ({"prediction_id": ""}, "prediction_id: String should have at least 1 character"),
        ({"prediction": None}, "prediction is required unless error_type is set"),
        ({"latency_ms": -1.0}, "latency_ms: Input should be greater than or equal to 0"),
        ({"probabilities": {"0": 0.5, "1": 0.6}}, r"probabilities sum to 1\.1"),
        ({"event_time": datetime(2026, 1, 1)}, "event_time: Input should have timezone info"),
        ({"task": "ranking"}, "task: Input should be 'classification' or 'regression'"),
        ({"task": "regression", "prediction": "cat"}, "regression prediction must be a number"),
        ({"error_type": "Bad Type"}, "error_type: String should match pattern"),
    ],
)
def test_invalid_arguments_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        PredictionEncoder().encode(**{**BASE, **change})


def test_slow_path_accepts_what_the_contract_accepts() -> None:
    # a non-UTC offset and a float subclass take the slow path but are valid
    tz = timezone(timedelta(hours=2))

    class MyFloat(float):
        pass

    args = {**BASE, "event_time": T.astimezone(tz), "score": MyFloat(0.5)}
    _, value = PredictionEncoder().encode(**args)
    assert decode_event(PredictionLogged, value).event_time == T


def test_labels() -> None:
    enc = PredictionEncoder()
    key, value = enc.encode_label(prediction_id="p1", label=1, event_time=T, model="fraud")
    assert key == b"p1"
    assert decode_event(LabelObserved, value) == LabelObserved(
        prediction_id="p1", label=1, event_time=T, model="fraud"
    )
    with pytest.raises(InvalidEventError, match="label: Input should be a finite number"):
        enc.encode_label(prediction_id="p1", label=math.inf, event_time=T)


# -- property: the fast path never accepts what the contract rejects ---------------------
feature_values = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.integers(-(2**60), 2**60),
    st.sampled_from([2**53, 2**53 + 1, -(2**53), 10**400, 1e200, -9.007199254740992e15]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
)
names = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True), st.text(max_size=5)
)
targets = st.one_of(
    st.none(),
    st.integers(0, 5),
    st.floats(),
    st.sampled_from(["cat", "dog", "not fraud", "", "c" * 64, "c" * 65, "β\x7f", 10**400]),
    st.text(max_size=70),
    st.booleans(),
)
#: Aware times near and beyond the bounds, in odd offsets (and naive ones).
event_times = st.one_of(
    st.just(T),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-14))]
        ),
    ),
    st.sampled_from(
        [
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2099, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
            T.replace(tzinfo=None),
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    model=names,
    version=names,
    prediction_id=st.one_of(st.just("p-1"), st.text(max_size=8)),
    features=st.dictionaries(
        st.one_of(st.just("x"), st.text(max_size=6)), feature_values, max_size=4
    ),
    prediction=targets,
    probabilities=st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(["0", "1", "a b"]), st.floats(-0.5, 1.5), max_size=2),
    ),
    score=st.one_of(st.none(), st.floats()),
    latency_ms=st.one_of(st.floats(-1, 10), st.integers(-1, 5), st.just(4e6)),
    error_type=st.one_of(st.none(), st.sampled_from(["timeout", "Bad", "oom_killed"])),
    task=st.sampled_from(["classification", "regression", "other"]),
    event_time=event_times,
)
def test_fast_path_agrees_with_the_contract(**kwargs: Any) -> None:
    agrees(PredictionLogged, PredictionEncoder().encode, {**kwargs, "unit_id": "u1"})


@settings(max_examples=300, deadline=None)
@given(label=targets, event_time=event_times)
def test_label_fast_path_agrees_with_the_contract(label: Any, event_time: datetime) -> None:
    args = {"prediction_id": "p1", "label": label, "event_time": event_time}
    agrees(LabelObserved, PredictionEncoder().encode_label, args)


# -- bounds (issue 11 items 1-3): refused at the call site, naming the field -------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prediction": "not fraud"}, "prediction: String should match pattern"),
        ({"prediction": "c" * 117}, "prediction: String should have at most 64 characters"),
        ({"probabilities": {"not fraud": 1.0}}, "probabilities.not fraud"),
        (
            {"event_time": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            "event_time: Value error, event time must be in",
        ),
        (
            {
                "event_time": datetime(
                    9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))
                )
            },
            "event_time: Value error, event time must be in",
        ),
        (
            {"task": "regression", "prediction": 10**400, "probabilities": None},
            "prediction: Input should be less than or equal to 9007199254740992",
        ),
        ({"features": {"amount": 1e200}}, "features.amount: Input should be less than or equal"),
        ({"features": {"n": -(10**400)}}, "features.n: Input should be greater than or equal"),
    ],
)
def test_out_of_bounds_arguments_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        PredictionEncoder().encode(**{**BASE, **change})


@pytest.mark.parametrize(
    ("label", "event_time"),
    [("not fraud", T), (10**400, T), (1, datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))],
)
def test_out_of_bounds_labels_are_refused(label: Any, event_time: datetime) -> None:
    with pytest.raises(InvalidEventError, match=r"^(label|event_time): "):
        PredictionEncoder().encode_label(prediction_id="p1", label=label, event_time=event_time)


# -- latency --------------------------------------------------------------------------
def test_latency_timer_with_a_fake_clock() -> None:
    now = [0.0]
    seen: list[tuple[str, float]] = []
    timer = LatencyTimer(lambda stage, s: seen.append((stage, s)), clock=lambda: now[0])
    with timer:
        with timer.stage("preprocessing"):
            now[0] += 0.002
        with timer.stage("inference"):
            now[0] += 0.010
        with timer.stage("inference"):
            now[0] += 0.005
        now[0] += 0.001
    now[0] += 5.0  # after stop: ignored
    assert timer.stages_ms == pytest.approx({"preprocessing": 2.0, "inference": 15.0})
    assert timer.total_ms == pytest.approx(18.0)
    assert seen == [
        ("preprocessing", pytest.approx(0.002)),
        ("inference", pytest.approx(0.010)),
        ("inference", pytest.approx(0.005)),
    ]
    with pytest.raises(ValueError, match="stage must be one of"), timer.stage("training"):  # type: ignore[arg-type]
        pass


# -- payload size -----------------------------------------------------------------------
#: Within every per-field bound (512 features, strings of 1024 characters), yet about
#: 300 kB encoded: far over the 64 KiB every consumer accepts (``Limits.max_payload_bytes``).
WIDE_FEATURES = {f"f{i}": "x" * 1000 for i in range(300)}


@pytest.mark.parametrize("features", [WIDE_FEATURES, {**WIDE_FEATURES, "odd": math.nan}])
def test_an_event_too_large_for_the_consumers_is_refused(features: dict[str, Any]) -> None:
    """Before: the SDK queued it and every processor dead-lettered it ("payload is
    303070 bytes, limit is 65536"); the caller never heard of it."""
    with pytest.raises(InvalidEventError, match=r"(bytes, the limit is 65536|features\.odd)"):
        PredictionEncoder().encode(**{**BASE, "features": features})


def test_the_largest_event_the_sdk_accepts_decodes_at_every_consumer() -> None:
    features = {f"f{i}": "x" * 1000 for i in range(60)}
    _key, value = PredictionEncoder().encode(**{**BASE, "features": features})
    assert decode_event(PredictionLogged, value).features == features


def test_emit_event_refuses_a_built_event_too_large_for_the_consumers() -> None:
    from modelguard.sdk import EventSDK

    sdk = EventSDK("127.0.0.1:1", message_timeout_s=1)
    try:
        event = PredictionLogged.model_validate({**BASE, "features": WIDE_FEATURES})
        with pytest.raises(InvalidEventError, match="the limit is 65536"):
            sdk.emit_event(event)
        assert sdk.invalid == {"prediction": 1}
        assert sdk.queued["prediction"] == 0
    finally:
        sdk.close(timeout=0)
