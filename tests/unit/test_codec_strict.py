"""Strict decoding: no coercion of strings/booleans to numbers, no duplicate keys."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.contracts.codec import DecodeError, decode_event
from modelguard.contracts.predictions import LabelObserved, PredictionLogged

PRED = {
    "prediction_id": "p1",
    "model": "fraud",
    "version": "v1",
    "unit_id": "u:1",
    "event_time": "2026-01-01T10:11:12+01:00",
    "features": {"amount": 12.5, "country": "DE:BY", "n": 3},
    "prediction": 1,
    "probabilities": {"0": 0.25, "1": 0.75},
    "latency_ms": 3.5,
}


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [("latency_ms", "12.5"), ("latency_ms", True), ("prediction", True), ("score", "1")],
)
def test_strings_and_booleans_are_not_numbers(field: str, value: object) -> None:
    with pytest.raises(DecodeError) as info:
        decode_event(PredictionLogged, _raw({**PRED, field: value}))
    assert info.value.kind == "invalid"
    assert field in info.value.reason


def test_a_boolean_label_is_not_the_class_1() -> None:
    raw = b'{"prediction_id":"p1","label":true,"event_time":"2026-01-01T00:00:00Z"}'
    with pytest.raises(DecodeError, match="label"):
        decode_event(LabelObserved, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"prediction_id":"p1","label":1,"label":0,"event_time":"2026-01-01T00:00:00Z"}',
        b'{"prediction_id" : "p1", "label" : 1, "event_time" : "2026-01-01T00:00:00Z",'
        b' "label" : 1}',
        # the duplicate hides behind an escaped colon: the exact (slow) path decides
        b'{"prediction_id":"p\\u003a1","label":1,"label":0,"event_time":"2026-01-01T00:00:00Z"}',
    ],
)
def test_duplicate_keys_are_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_event(LabelObserved, raw)
    assert info.value.kind == "duplicate_key"
    assert "'label'" in info.value.reason


def test_nested_duplicate_keys_are_rejected() -> None:
    raw = _raw(PRED).replace(b'"n": 3', b'"n": 3, "amount": 99.0')
    with pytest.raises(DecodeError, match="duplicate key 'amount'"):
        decode_event(PredictionLogged, raw)


def test_valid_events_with_colons_and_escapes_still_decode() -> None:
    event = decode_event(PredictionLogged, _raw(PRED))
    assert event.features["country"] == "DE:BY" and event.latency_ms == 3.5
    escaped = _raw({**PRED, "unit_id": "u\\u003a\u00e9"})
    assert decode_event(PredictionLogged, escaped).unit_id == "u\\u003a\u00e9"
    assert decode_event(PredictionLogged, _raw({**PRED, "latency_ms": 3})).latency_ms == 3.0


keys = st.text(st.sampled_from('ab:"\\\u00e9\u2028 '), min_size=1, max_size=4)
values = st.one_of(st.integers(-10, 10), st.text(st.sampled_from('x:"\\\u00e9'), max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(keys, values), min_size=1, max_size=6), st.booleans())
def test_features_with_any_keys_decode_iff_keys_are_unique(
    pairs: list[tuple[str, object]], compact: bool
) -> None:
    sep = (",", ":") if compact else (", ", ": ")
    features = "{" + sep[0].join(json.dumps(k) + sep[1] + json.dumps(v) for k, v in pairs) + "}"
    raw = _raw(PRED).replace(b'{"amount": 12.5, "country": "DE:BY", "n": 3}', features.encode())
    names = [k for k, _ in pairs]
    valid_names = all(k.strip() == k and " " not in k and "\u2028" not in k for k in names)
    try:
        event = decode_event(PredictionLogged, raw)
    except DecodeError as exc:
        if len(set(names)) < len(names):
            assert exc.kind in {"duplicate_key", "invalid"}
        else:
            assert exc.kind == "invalid" and not valid_names
        return
    assert len(set(names)) == len(names)
    assert dict(event.features) == dict(pairs)
