"""Folding a batch of events with deferred window contributions (the service's path:
``MetricsProcessor.prediction`` / ``label`` then ``settle``) gives exactly what
``handle`` gives event by event: the same closed windows (aggregate and metrics) and the
same state, whatever the batch boundaries and checkpoint/restore points."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.contracts import LabelObserved, PredictionLogged
from modelguard.contracts.fastdecode import label_fields, prediction_fields
from modelguard.core.metrics import MetricsConfig, MetricsProcessor, PartitionState, run
from modelguard.core.metrics.processor import ClosedWindow
from tests.support.metrics import comparable

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CFG = MetricsConfig(
    window_lengths_s=(5.0, 10.0, 30.0),
    last_n=7,
    label_ttl_s=20.0,
    orphan_grace_s=6.0,
    allowed_lateness_s=2.0,
    max_input_lag_s=30.0,
)


@st.composite
def streams(draw: st.DrawFn) -> list[PredictionLogged | LabelObserved]:
    n = draw(st.integers(1, 120))
    events: list[tuple[float, PredictionLogged | LabelObserved]] = []
    for i in range(n):
        t = i * draw(st.sampled_from([0.05, 0.2, 0.7]))
        kind = draw(st.sampled_from(["binary", "binary", "multi", "regression", "error"]))
        version = f"v{draw(st.integers(0, 2))}"
        latency = draw(st.sampled_from([0.0, 1e-12, 0.5, 3.0, 47.25, 1200.0]))
        if kind == "regression":
            p: dict[str, Any] = {"task": "regression", "prediction": draw(st.floats(-5, 5))}
        elif kind == "error":
            p = {"error_type": draw(st.sampled_from(["timeout", "oom"]))}
        elif kind == "multi":
            p = {
                "prediction": draw(st.sampled_from(["a", "b", "c"])),
                "probabilities": {"a": 0.5, "b": 0.25, "c": 0.25},
            }
        else:
            q = draw(st.floats(0, 1))
            p = {"prediction": draw(st.integers(0, 1)), "probabilities": {"0": 1 - q, "1": q}}
        e = PredictionLogged(
            prediction_id=f"p{i}",
            model=draw(st.sampled_from(["fraud", "churn"])),
            version=version,
            unit_id="u",
            event_time=T0 + timedelta(seconds=t),
            latency_ms=latency,
            stage_latency_ms=draw(st.sampled_from([None, {"inference": 1.5}])),
            **p,
        )
        events.append((t, e))
        if draw(st.integers(0, 9)) == 0:
            events.append((t, e))  # a duplicate
        if draw(st.integers(0, 3)):
            delay = draw(st.sampled_from([-8.0, -1.0, 0.0, 0.3, 4.0, 19.0, 25.0]))
            value: Any = (
                draw(st.floats(-5, 5))
                if kind == "regression"
                else draw(st.sampled_from(["a", "b"]))
                if kind == "multi"
                else draw(st.integers(0, 1))
            )
            lab = LabelObserved(
                prediction_id=f"p{i}", label=value, event_time=T0 + timedelta(seconds=t + delay)
            )
            events.append((t + delay, lab))
    events.sort(key=lambda x: x[0])  # in order: the property is about batching only
    return [e for _, e in events]


@settings(max_examples=120, deadline=None)
@given(events=streams(), data=st.data())
def test_batches_with_deferred_window_contributions_equal_event_by_event(
    events: list[PredictionLogged | LabelObserved], data: st.DataObject
) -> None:
    ref_state, ref_closed = run(events, CFG, flush=False)
    ref_closed += MetricsProcessor(CFG).flush(ref_state)
    cuts = set(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    restores = set(data.draw(st.lists(st.sampled_from(sorted(cuts) or [0]), max_size=2)))
    processor = MetricsProcessor(CFG)
    state = PartitionState()
    closed: list[ClosedWindow] = []
    for k, e in enumerate(events):
        if k in cuts:  # the end of a batch, maybe a checkpoint and restart
            processor.settle()
            if k in restores:
                state = PartitionState.from_json(json.loads(json.dumps(state.to_json())))
        if isinstance(e, PredictionLogged):
            processor.prediction(prediction_fields(e), state, None, closed)
        else:
            processor.label(label_fields(e), state, None, closed)
    processor.settle()
    closed += processor.flush(state)
    assert comparable(closed) == comparable(ref_closed)
    assert json.dumps(state.to_json(), sort_keys=True) == json.dumps(
        ref_state.to_json(), sort_keys=True
    )
