"""Fuzz (issue 11): contract-valid events with extreme values, and arbitrary bytes
through decode, run through every processor's in-memory driver: nothing raises.

Extremes: numbers at ``±max_abs_number`` and tiny subnormals, class strings at the
length bound with unicode and punctuation, event times at both ends of the allowed
range (in odd offsets), arrival times far behind or ahead, repeated ids, many classes.
"""

from __future__ import annotations

import contextlib
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.contracts import (
    LIMITS,
    DecodeError,
    ExposureLogged,
    LabelObserved,
    OutcomeObserved,
    PredictionLogged,
    decode_event,
)
from modelguard.core.drift import DriftConfig, DriftProcessor
from modelguard.core.experiments import bookkeeping
from modelguard.core.metrics import MetricsConfig, run, to_event

MAX = LIMITS.max_abs_number
LOW = datetime.fromtimestamp(LIMITS.min_event_time, tz=UTC)
HIGH = datetime.fromtimestamp(LIMITS.max_event_time, tz=UTC) - timedelta(microseconds=1)
EMITTED = datetime(2026, 1, 1, tzinfo=UTC)

numbers = st.one_of(
    st.sampled_from([MAX, -MAX, int(MAX), -int(MAX), 5e-324, -5e-324, 0, 0.0, -0.0, 1]),
    st.integers(-int(MAX), int(MAX)),
    st.floats(-MAX, MAX),
)
class_chars = st.characters(
    blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
    blacklist_characters="\x85\u180e\u200b\u2060\ufeff\x1c\x1d\x1e\x1f",
)
classes = st.one_of(
    st.sampled_from(["0", "1", "true", "__other__", "x" * LIMITS.max_class_length, "a.b:c/d"]),
    st.text(class_chars, min_size=1, max_size=LIMITS.max_class_length),
)
#: Times at both ends of the range, in offsets that move them across a day boundary.
times = st.one_of(
    st.sampled_from([LOW, HIGH, LOW + timedelta(seconds=1), HIGH - timedelta(seconds=3600)]),
    st.datetimes(
        min_value=LOW.replace(tzinfo=None) + timedelta(days=1),
        max_value=HIGH.replace(tzinfo=None) - timedelta(days=1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
        ),
    ),
)
ids = st.sampled_from(["p1", "p2", "p3", "é", "∑-id", "x" * LIMITS.max_id_length])
names = st.text(string.ascii_letters + "._:-", min_size=1, max_size=8)


@st.composite
def predictions(draw: st.DrawFn) -> PredictionLogged:
    task = draw(st.sampled_from(["classification", "regression"]))
    failed = draw(st.integers(0, 9)) == 0
    prediction: Any = None
    if not failed:
        prediction = draw(numbers) if task == "regression" else draw(st.one_of(classes, numbers))
    probabilities = None
    if task == "classification" and draw(st.booleans()):
        keys = draw(st.lists(classes, min_size=1, max_size=4, unique=True))
        probabilities = {k: 1.0 / len(keys) for k in keys}
    return PredictionLogged.model_validate(
        {
            "prediction_id": draw(ids),
            "model": draw(st.sampled_from(["m", "M-1.x"])),
            "version": draw(st.sampled_from(["v1", "v2"])),
            "unit_id": draw(ids),
            "event_time": draw(times),
            "task": task,
            "features": draw(
                st.dictionaries(
                    st.sampled_from(["a", "b", "c"]),
                    st.one_of(numbers, st.none(), st.text(max_size=5)),
                    max_size=3,
                )
            ),
            "prediction": prediction,
            "probabilities": probabilities,
            "score": draw(st.none() | st.floats(-MAX, MAX)),
            "latency_ms": draw(st.sampled_from([0.0, 5e-324, 3_600_000.0, 1.5])),
            "stage_latency_ms": draw(st.none() | st.just({"inference": 3_600_000.0})),
            "error_type": "timeout" if failed else None,
        }
    )


@st.composite
def labels(draw: st.DrawFn) -> LabelObserved:
    return LabelObserved.model_validate(
        {
            "prediction_id": draw(ids),
            "model": draw(st.none() | st.just("m")),
            "label": draw(st.one_of(classes, numbers)),
            "event_time": draw(times),
        }
    )


events = st.lists(st.one_of(predictions(), labels()), max_size=25)
arrivals = st.none() | st.sampled_from([LOW, HIGH, EMITTED]).map(lambda d: d.timestamp())

METRICS = MetricsConfig(window_lengths_s=(60.0, 3600.0), last_n=3, max_pending=4, max_orphans=3)
DRIFT = DriftConfig(window_events=6, min_window_events=2, warmup_events=3, horizon=50)


def _through_every_processor(batch: list[Any], arrival: float | None) -> None:
    state, closed = run(batch, METRICS, arrivals=[arrival] * len(batch))
    for w in closed:
        json.loads(to_event(w, EMITTED).model_dump_json())  # every window is a valid event
    json.dumps(state.to_json(), allow_nan=False)  # and the checkpoint is strict JSON
    DriftProcessor(DRIFT).run(batch)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=events, arrival=arrivals)
def test_metrics_and_drift_never_raise_on_contract_valid_extremes(
    batch: list[Any], arrival: float | None
) -> None:
    _through_every_processor(batch, arrival)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outcomes=st.lists(
        st.tuples(
            ids,
            st.sampled_from(["exposure", "outcome"]),
            st.floats(allow_nan=False, allow_infinity=False),
            st.none() | st.floats(allow_nan=False, allow_infinity=False),
            times,
        ),
        max_size=20,
    )
)
def test_experiments_never_raise_on_contract_valid_extremes(
    outcomes: list[tuple[str, str, float, float | None, datetime]],
) -> None:
    batch: list[ExposureLogged | OutcomeObserved] = []
    for i, (unit, kind, value, pre, t) in enumerate(outcomes):
        if kind == "exposure":
            batch.append(
                ExposureLogged(
                    event_id=f"e{i}",
                    experiment_id="x",
                    unit_id=unit,
                    arm="v1" if i % 2 else "v2",
                    model="m",
                    event_time=t,
                )
            )
        else:
            batch.append(
                OutcomeObserved(
                    event_id=f"o{i}",
                    experiment_id="x",
                    unit_id=unit,
                    metric="conversion",
                    value=value,
                    pre_period_value=pre,
                    event_time=t,
                )
            )
    bookkeeping.run(batch)


prefixes = st.sampled_from(
    [
        b"",
        b'{"prediction_id":"p1","model":"m","version":"v1","unit_id":"u","latency_ms":1,',
        b'{"prediction_id":"p1","label":',
    ]
)


@settings(max_examples=150, deadline=None)
@given(prefix=prefixes, raw=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error_only(prefix: bytes, raw: bytes) -> None:
    for model in (PredictionLogged, LabelObserved, ExposureLogged, OutcomeObserved):
        try:
            event = decode_event(model, prefix + raw)
        except DecodeError:
            continue
        if isinstance(event, PredictionLogged | LabelObserved):
            _through_every_processor([event], None)
        else:
            bookkeeping.run([event])


@settings(max_examples=80, deadline=None)
@given(
    value=st.one_of(numbers, classes, st.integers(), st.floats(), st.text(max_size=80)),
    when=st.one_of(
        times.map(lambda d: d.isoformat()),
        st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]),
    ),
)
def test_decoded_bytes_with_extreme_fields_never_crash_a_processor(value: Any, when: str) -> None:
    body = {"prediction_id": "p1", "label": value, "event_time": when}
    raw = json.dumps(body).encode()
    pbody = {
        "prediction_id": "p1",
        "model": "m",
        "version": "v1",
        "unit_id": "u",
        "event_time": when,
        "prediction": value,
        "latency_ms": 1.0,
    }
    decoded: list[Any] = []
    for model, data in ((LabelObserved, raw), (PredictionLogged, json.dumps(pbody).encode())):
        with contextlib.suppress(DecodeError):
            decoded.append(decode_event(model, data))
    _through_every_processor(decoded, None)
