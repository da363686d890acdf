"""Event contracts: validation at the edge, readable errors, lossless round trips."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard.contracts import (
    LIMITS,
    DecodeError,
    DriftSignal,
    LabelObserved,
    MetricWindowClosed,
    PredictionLogged,
    RoutingDecision,
    Severity,
    WindowSpec,
    decode_event,
    encode_event,
)
from modelguard.contracts.dead_letter import DeadLetter
from tests.support.events import prediction_fields

T0 = datetime(2026, 11, 1, tzinfo=UTC)
BASE = prediction_fields()

finite = st.floats(min_value=-LIMITS.max_abs_number, max_value=LIMITS.max_abs_number)
feature_values = st.one_of(st.none(), finite, st.integers(-(2**53), 2**53), st.text(max_size=20))
names = st.from_regex(r"[A-Za-z_.][A-Za-z0-9_.:-]{0,15}", fullmatch=True)


@given(features=st.dictionaries(names, feature_values, max_size=8), score=st.none() | finite)
def test_roundtrip_is_lossless(features: dict[str, object], score: float | None) -> None:
    event = PredictionLogged(**BASE, features=features, score=score)
    assert decode_event(PredictionLogged, encode_event(event)) == event


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_rejected_naming_the_field(token: bytes) -> None:
    raw = encode_event(PredictionLogged(**BASE, features={"amount": 1.5})).replace(b"1.5", token)
    with pytest.raises(DecodeError) as info:
        decode_event(PredictionLogged, raw)
    assert "features.amount" in info.value.reason


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"model": "bad model"}, "model"),
        ({"event_time": datetime(2026, 1, 1)}, "event_time"),
        ({"prediction": None}, "prediction is required unless error_type is set"),
        ({"probabilities": {"0": 0.5, "1": 0.6}}, "probabilities sum to 1.1"),
        ({"probabilities": {"0": 1.5}}, "probabilities.0"),
        ({"task": "regression", "prediction": "cat"}, "regression prediction must be a number"),
        ({"error_type": "Bad Type"}, "error_type"),
        ({"features": {f"f{i}": 1 for i in range(LIMITS.max_features + 1)}}, "features"),
        ({"features": {"x" * (LIMITS.max_name_length + 1): 1}}, "features"),
        ({"features": {"s": "y" * (LIMITS.max_string_length + 1)}}, "features.s"),
        ({"prediction_id": "p" * (LIMITS.max_id_length + 1)}, "prediction_id"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], fragment: str) -> None:
    raw = encode_event(PredictionLogged(**BASE)).decode()
    import json

    body = json.loads(raw)
    body.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in change.items()})
    with pytest.raises(DecodeError) as info:
        decode_event(PredictionLogged, json.dumps(body).encode())
    assert info.value.kind == "invalid"
    assert fragment in info.value.reason


def test_error_prediction_needs_no_prediction() -> None:
    event = PredictionLogged(**{**BASE, "prediction": None}, error_type="timeout")
    assert event.prediction is None


def test_unknown_fields_rejected() -> None:
    raw = encode_event(PredictionLogged(**BASE))[:-1] + b',"surprise":1}'
    with pytest.raises(DecodeError, match="surprise: Extra inputs are not permitted"):
        decode_event(PredictionLogged, raw)


def test_payload_size_limit_checked_before_parsing() -> None:
    with pytest.raises(DecodeError) as info:
        decode_event(LabelObserved, b" " * (LIMITS.max_payload_bytes + 1))
    assert info.value.kind == "too_large"


def test_null_message_is_invalid() -> None:
    with pytest.raises(DecodeError, match="null value"):
        decode_event(LabelObserved, None)


def test_label_and_control_events_roundtrip() -> None:
    events = [
        LabelObserved(prediction_id="p1", label="cat", event_time=T0),
        MetricWindowClosed(
            event_id="w1",
            model="m",
            version="v1",
            window=WindowSpec(kind="tumbling", length_seconds=60),
            window_start=T0,
            window_end=T0,
            n_predictions=10,
            n_labelled=5,
            n_errors=0,
            metrics={"accuracy": 0.8},
            emitted_at=T0,
        ),
        DriftSignal(
            event_id="d1",
            model="m",
            kind="data",
            feature="age",
            test="ks",
            statistic=0.3,
            p_value=0.001,
            drift_detected=True,
            severity=Severity.HIGH,
            window_start=T0,
            window_end=T0,
            n_reference=1000,
            n_current=500,
        ),
        RoutingDecision(
            decision_id="r1",
            model="m",
            action="rollback",
            reason="accuracy drop",
            old_weights={"v1": 0.9, "v2": 0.1},
            new_weights={"v1": 1.0, "v2": 0.0},
            revision_before=3,
            revision_after=4,
            evidence=[{"metric": "accuracy", "value": 0.7}],
            decided_at=T0,
        ),
    ]
    for event in events:
        assert decode_event(type(event), encode_event(event)) == event


def test_window_spec_consistency() -> None:
    with pytest.raises(ValueError, match="count window needs count"):
        WindowSpec(kind="count")


def test_dead_letter_headers_roundtrip() -> None:
    letter = DeadLetter(
        reason="x: bad",
        error_kind="invalid",
        stage="validator",
        source_topic="t",
        source_partition=2,
        source_offset=41,
        failed_at=T0,
    )
    assert DeadLetter.from_headers(letter.to_headers()) == letter


def test_severity_is_ordered() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.NONE
    assert math.isclose(float(Severity.HIGH), 3.0)


# -- bounds (issue 11 items 1-3): what crashed a processor is refused at the edge ---------
BOUND_CASES = [
    ({"prediction": "not fraud"}, "prediction"),  # whitespace: class_share.<class> invalid
    ({"prediction": "c" * (LIMITS.max_class_length + 1)}, "prediction"),
    ({"prediction": ""}, "prediction"),
    ({"prediction": "tab\there"}, "prediction"),
    ({"probabilities": {"not fraud": 1.0}}, "probabilities"),
    ({"event_time": "0001-01-01T00:00:00+01:00"}, "event_time"),  # year 0 in UTC
    ({"event_time": "9999-12-31T23:59:59-14:00"}, "event_time"),  # year 10000 in UTC
    ({"event_time": "1969-12-31T23:59:59Z"}, "event_time"),
    ({"event_time": "2100-01-01T00:00:00Z"}, "event_time"),
    ({"event_time": "2099-12-31T23:59:59-14:00"}, "event_time"),  # 2100-01-01T13:59Z
    ({"task": "regression", "prediction": 10**400}, "prediction"),  # overflowed the join
    ({"prediction": 2**54}, "prediction"),
    ({"features": {"x": 1e200}}, "features.x"),
    ({"features": {"x": -(10**400)}}, "features.x"),
    ({"score": 1e300}, "score"),
]


@pytest.mark.parametrize(("change", "fragment"), BOUND_CASES)
def test_out_of_bounds_values_are_rejected_naming_the_field(
    change: dict[str, object], fragment: str
) -> None:
    import json

    body = json.loads(encode_event(PredictionLogged(**BASE)))
    body.update(change)
    with pytest.raises(DecodeError) as info:
        decode_event(PredictionLogged, json.dumps(body).encode())
    assert info.value.kind == "invalid"
    assert info.value.reason.startswith(fragment)


@pytest.mark.parametrize(
    ("label", "event_time"),
    [
        ("not fraud", "2026-01-01T00:00:00Z"),
        (10**400, "2026-01-01T00:00:00Z"),
        (1, "0001-01-01T00:00:00+01:00"),
        (1, "9999-12-31T23:59:59-14:00"),
    ],
)
def test_label_bounds(label: object, event_time: str) -> None:
    import json

    raw = json.dumps({"prediction_id": "p1", "label": label, "event_time": event_time})
    with pytest.raises(DecodeError):
        decode_event(LabelObserved, raw.encode())


@pytest.mark.parametrize(
    "change",
    [
        {"prediction": "x" * LIMITS.max_class_length},
        {"prediction": "über-Klasse/β:1"},
        {"prediction": -(2**53)},
        {"task": "regression", "prediction": float(2**53)},
        {"event_time": "1970-01-01T00:00:00Z"},
        {"event_time": "2099-12-31T23:59:59.999999Z"},
    ],
)
def test_values_at_the_bounds_are_accepted(change: dict[str, object]) -> None:
    import json

    body = json.loads(encode_event(PredictionLogged(**BASE)))
    body.update(change)
    decode_event(PredictionLogged, json.dumps(body).encode())


def test_schema_documents_the_bounds() -> None:
    schema = PredictionLogged.json_schema()
    props = schema["properties"]
    assert props["event_time"]["formatMinimum"].startswith("1970-01-01")
    assert props["event_time"]["formatExclusiveMaximum"].startswith("2100-01-01")
    assert "pattern" in json_dumps(props["prediction"])
    assert str(LIMITS.max_class_length) in json_dumps(props["prediction"])


def json_dumps(value: object) -> str:
    import json

    return json.dumps(value)
