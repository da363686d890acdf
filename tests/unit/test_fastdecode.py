"""The metrics hot path's decode (contracts.fastdecode) accepts and rejects exactly as the
contract (pydantic, contracts.codec.decode_event) does, with equal fields."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelguard.contracts import DecodeError, LabelObserved, PredictionLogged, decode_event
from modelguard.contracts.fastdecode import (
    _fast_label,
    _fast_prediction,
    decode_label_fields,
    decode_prediction_fields,
    label_fields,
    prediction_fields,
)
from modelguard.contracts.limits import LIMITS


def typed(x: Any) -> Any:
    """``x`` with every scalar tagged by its type (1 != 1.0 != True)."""
    if isinstance(x, dict):
        return {k: typed(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [typed(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return ("nan",)
    return (type(x).__name__, x)


def reference(model: type[PredictionLogged | LabelObserved], raw: bytes) -> Any:
    try:
        event = decode_event(model, raw)
    except DecodeError as exc:
        return ("error", exc.kind, exc.reason)
    if isinstance(event, PredictionLogged):
        return typed(prediction_fields(event))
    return typed(label_fields(event))


def check(model: type[PredictionLogged | LabelObserved], raw: bytes) -> bool:
    """Whatever the fast path accepts the contract accepts, with equal fields; the public
    decode returns the contract's result or raises its error. True if the fast path
    decided."""
    fast = (_fast_prediction if model is PredictionLogged else _fast_label)(raw)
    ref = reference(model, raw)
    if fast is not None:
        assert ref[0] != "error", (raw, ref)
        assert typed(fast) == ref, raw
    decode = decode_prediction_fields if model is PredictionLogged else decode_label_fields
    try:
        got = typed(decode(raw))
    except DecodeError as exc:
        got = ("error", exc.kind, exc.reason)
    assert got == ref, raw
    return fast is not None


# -- strategies: mostly near-valid payloads, each field sometimes off the contract --------
MAX = LIMITS.max_abs_number
ascii_ids = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
    min_size=1,
    max_size=12,
)
odd_text = st.text(max_size=8)  # any unicode: spaces, controls, quotes, backslashes


def mostly(valid: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, else one of ``odd``."""
    other = st.one_of(*odd)
    return st.integers(0, 9).flatmap(lambda i: valid if i else other)


identifier = mostly(ascii_ids, odd_text, st.just("x" * 129), st.integers())
name = mostly(
    st.sampled_from(["fraud", "m1", "v2", "a.b-c_d", "0x"]),
    st.sampled_from(["", "-bad", "has space", "ünï", "a" * 129]),
    st.none(),
)
numbers = st.one_of(
    st.integers(-(2**60), 2**60),
    st.sampled_from([2**53, -(2**53), 2**53 + 1, 10**30, True, False, 0, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-MAX, MAX),
)
class_names = mostly(ascii_ids, odd_text, st.just("c" * 65))
targets = mostly(st.one_of(numbers, class_names), st.none())
times = mostly(
    st.sampled_from(["2026-11-01T00:00:00Z", "2026-11-01T10:20:30.25Z", "2030-01-01T00:00:00Z"]),
    st.sampled_from(
        [
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00.5Z",
            "2026-11-01T23:59:59.999999Z",
            "2026-11-01T00:00:00+00:00",
            "2026-11-01T00:00:00.1234567Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "2099-12-31T23:59:59.999999Z",
            "2100-01-01T00:00:00Z",
            "2024-02-29T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T00:00:60Z",
            "2026-11-01T00:00:00+01:00",
            "2026-11-01 00:00:00Z",
            "2026-11-01t00:00:00z",
            "2026-11-01T00:00:00.Z",
            "2026-11-01T00:00:00",
            "0001-01-01T00:00:00Z",
            "\uff12\uff10\uff12\uff16-11-01T00:00:00Z",  # full-width digits
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    odd_text,
    st.integers(0, 2**31),
)
probabilities = mostly(
    st.one_of(st.none(), st.just({"0": 0.3, "1": 0.7}), st.just({"0": 1, "1": 0})),
    st.dictionaries(class_names, st.one_of(st.floats(0, 1), st.integers(0, 1)), max_size=3),
    st.dictionaries(class_names, numbers, max_size=3),
    st.integers(),
)
features = mostly(
    st.dictionaries(ascii_ids, st.one_of(st.floats(-1e6, 1e6), st.integers(-9, 9), odd_text)),
    st.dictionaries(
        st.one_of(ascii_ids, odd_text), st.one_of(numbers, odd_text, st.none()), max_size=4
    ),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
stages = mostly(
    st.one_of(st.none(), st.just({"inference": 2.5}), st.just({"preprocessing": 0})),
    st.dictionaries(
        st.sampled_from(["preprocessing", "inference", "postprocessing", "total"]),
        st.one_of(numbers, st.floats(0, 1e308)),
        max_size=3,
    ),
)
MISSING = object()


def maybe(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return mostly(s, st.just(MISSING))


@st.composite
def prediction_payloads(draw: st.DrawFn) -> bytes:
    d: dict[str, Any] = {
        "prediction_id": draw(maybe(identifier)),
        "model": draw(maybe(name)),
        "version": draw(maybe(name)),
        "unit_id": draw(maybe(identifier)),
        "experiment_id": draw(maybe(st.one_of(st.none(), identifier))),
        "event_time": draw(maybe(times)),
        "task": draw(
            maybe(
                mostly(
                    st.sampled_from(["classification", "regression"]),
                    st.sampled_from(["other", None]),
                )
            )
        ),
        "features": draw(maybe(features)),
        "prediction": draw(maybe(targets)),
        "probabilities": draw(maybe(probabilities)),
        "score": draw(maybe(st.one_of(st.none(), numbers))),
        "latency_ms": draw(
            maybe(mostly(st.floats(0, 1e4), numbers, st.just(3_600_001), st.none()))
        ),
        "stage_latency_ms": draw(maybe(stages)),
        "error_type": draw(
            maybe(mostly(st.none(), st.sampled_from(["timeout", "Bad", "", "e" * 65])))
        ),
    }
    if draw(st.integers(0, 9)) == 0:
        d["unknown"] = 1
    return serialise(draw, {k: v for k, v in d.items() if v is not MISSING})


@st.composite
def label_payloads(draw: st.DrawFn) -> bytes:
    d: dict[str, Any] = {
        "prediction_id": draw(maybe(identifier)),
        "model": draw(maybe(name)),
        "label": draw(maybe(targets)),
        "event_time": draw(maybe(times)),
    }
    if draw(st.integers(0, 9)) == 0:
        d["extra"] = None
    return serialise(draw, {k: v for k, v in d.items() if v is not MISSING})


def serialise(draw: st.DrawFn, d: dict[str, Any]) -> bytes:
    how = draw(st.integers(0, 11))
    if how == 0:  # spaced, non-ASCII escaped
        raw = json.dumps(d, ensure_ascii=True, indent=1).encode()
    elif how == 1 and d:  # a key repeated
        key = draw(st.sampled_from(sorted(d)))
        body = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        raw = (body[:-1] + "," + json.dumps(key) + ":" + json.dumps(d[key]) + "}").encode()
    elif how == 2:  # a byte changed or cut
        raw = json.dumps(d, ensure_ascii=False).encode()
        i = draw(st.integers(0, max(0, len(raw) - 1)))
        raw = raw[:i] + draw(st.binary(max_size=2)) + raw[i + 1 :]
    else:
        raw = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
    return raw


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(prediction_payloads())
@example(
    b'{"prediction_id":"p","model":"m","version":"v","unit_id":"u","event_time":'
    b'"2026-11-01T00:00:00Z","features":null,"prediction":1,"latency_ms":1}'
)
@example(
    b'{"prediction_id":"p","model":"m","version":"v","unit_id":"u","event_time":'
    b'"2026-11-01T00:00:00Z","prediction":1,"latency_ms":1,"latency_ms":2}'
)
@example(
    b'{"prediction_id":"p","model":"m","version":"v","unit_id":"u","event_time":'
    b'"2026-11-01T00:00:00Z","features":{"a":1,"a":2},"prediction":1,"latency_ms":1}'
)
@example(
    b'{"prediction_id":"p","model":"m","version":"v","unit_id":"u","event_time":'
    b'"2026-11-01T00:00:00Z","prediction":true,"latency_ms":1}'
)
@example(
    b'{"prediction_id":"p","model":"m","version":"v","unit_id":"u","event_time":'
    b'"2026-11-01T00:00:00Z","prediction":1,"latency_ms":NaN}'
)
def test_prediction_fast_path_accepts_exactly_as_the_contract(raw: bytes) -> None:
    check(PredictionLogged, raw)


@FAST
@given(label_payloads())
@example(b'{"prediction_id":"p","label":1,"label":0,"event_time":"2026-11-01T00:00:00Z"}')
@example(b'{"prediction_id":"p","label":9007199254740993,"event_time":"2026-11-01T00:00:00Z"}')
@example(b'{"prediction_id":"p","label":"a b","event_time":"2026-11-01T00:00:00Z"}')
@example(b'{"prediction_id":"p\\u0020q","label":1,"event_time":"2026-11-01T00:00:00Z"}')
def test_label_fast_path_accepts_exactly_as_the_contract(raw: bytes) -> None:
    check(LabelObserved, raw)


def sdk_like(i: int) -> PredictionLogged:
    return PredictionLogged.model_validate(
        {
            "prediction_id": f"p-{i}",
            "model": "fraud",
            "version": f"v{i % 3}",
            "unit_id": f"user:{i}",
            "event_time": f"2026-11-01T00:00:{i % 60:02d}.{i % 1000:03d}Z",
            "features": {"amount": i * 0.5, "country": "DE", "age": i % 90, "x": None},
            "prediction": i % 2,
            "probabilities": {"0": 0.25, "1": 0.75},
            "latency_ms": 3.0 + i % 40,
            "stage_latency_ms": {"inference": 2.5},
        }
    )


@pytest.mark.parametrize("i", range(0, 200, 37))
def test_the_usual_events_take_the_fast_path(i: int) -> None:
    """Events as the SDK writes them are decided by the fast path (else it saves nothing)."""
    from modelguard.contracts import encode_event

    assert check(PredictionLogged, encode_event(sdk_like(i)))
    raw = encode_event(
        LabelObserved.model_validate(
            {"prediction_id": f"p-{i}", "label": i % 2, "event_time": "2026-11-01T00:01:00Z"}
        )
    )
    assert check(LabelObserved, raw)


def test_too_large_and_null_payloads_fail_as_the_contract() -> None:
    big = b'{"prediction_id":"' + b"p" * LIMITS.max_payload_bytes + b'"}'
    for raw in (big, None):
        with pytest.raises(DecodeError) as fast:
            decode_prediction_fields(raw)
        with pytest.raises(DecodeError) as ref:
            decode_event(PredictionLogged, raw)
        assert (fast.value.kind, fast.value.reason) == (ref.value.kind, ref.value.reason)
