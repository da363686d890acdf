"""The metrics changelog record (orjson since issue 15) holds the same state as the JSON
written before, and a NaN is still refused."""

from __future__ import annotations

import json
import math
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from modelguard.contracts import LabelObserved, PredictionLogged
from modelguard.core.metrics import MetricsConfig, PartitionState, run
from modelguard_services.metrics.app import decode_state, encode_state

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _state() -> PartitionState:
    events: list[PredictionLogged | LabelObserved] = []
    for i in range(3000):
        t = T0 + timedelta(milliseconds=37 * i)
        events.append(
            PredictionLogged(
                prediction_id=f"p{i}",
                model="fraud",
                version=f"v{i % 3}",
                unit_id="u",
                event_time=t,
                task="regression" if i % 7 == 0 else "classification",
                prediction=(i % 5) * 0.1 if i % 7 == 0 else i % 2,
                probabilities=None if i % 7 == 0 else {"0": 0.3, "1": 0.7},
                latency_ms=0.1 + i % 40,
                stage_latency_ms={"inference": 1.5},
                error_type="timeout" if i % 50 == 0 else None,
            )
        )
        if i % 4:
            events.append(
                LabelObserved(prediction_id=f"p{i - 3}", label=(i // 3) % 2, event_time=t)
            )
    state, _ = run(events, MetricsConfig(last_n=100, window_lengths_s=(10.0, 60.0)), flush=False)
    state.offsets = {"t:0": 12}
    return state


def test_the_record_holds_the_state_as_the_json_encoding_did() -> None:
    state = _state()
    old = json.dumps(state.to_json(), separators=(",", ":"), allow_nan=False)
    raw = encode_state(state)
    assert json.loads(zlib.decompress(raw)) == json.loads(old)
    assert decode_state(raw).to_json() == state.to_json()


def test_a_nan_metric_is_refused_as_before() -> None:
    state = _state()
    vs = next(iter(state.versions.values()))
    vs.last_window_metrics["60s"]["accuracy"] = math.nan
    with pytest.raises(ValueError):
        json.dumps(state.to_json(), allow_nan=False)
    with pytest.raises(ValueError):
        encode_state(state)
