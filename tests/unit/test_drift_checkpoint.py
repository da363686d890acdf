"""A drift state saved as JSON mid-stream and restored continues exactly like an
uninterrupted run (warm-up buffers, open windows, sequential detectors, label joins,
ADWIN rebuilt from its recent errors)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import (
    ConceptDetector,
    DriftConfig,
    DriftProcessor,
    DriftState,
    Output,
    WindowReport,
)
from modelguard.core.drift.checkpoint import CheckpointError, dump_state, load_state
from tests.unit.test_drift_warmup import PARTITIONS, _backlog_order, _dashboard_stream, _partition

CONFIG = DriftConfig(window_events=150, warmup_events=200, concept_baseline_labels=100)
Event = PredictionLogged | LabelObserved


def _stream() -> list[Event]:
    """The dashboards stream (arriving partition by partition) with a label after each
    prediction; the error rate of v2 jumps when the shift starts."""
    rng = np.random.default_rng(5)
    out: list[Event] = []
    for e in _backlog_order(_dashboard_stream()):
        out.append(e)
        if e.prediction is not None:
            shifted = int(e.prediction_id.rsplit("-", 1)[1]) >= 450
            wrong = rng.random() < (0.5 if shifted and e.version == "v2" else 0.1)
            label = 1 - int(e.prediction) if wrong else int(e.prediction)
            out.append(
                LabelObserved(
                    prediction_id=e.prediction_id,
                    label=label,
                    event_time=e.event_time + timedelta(milliseconds=1),
                )
            )
    return out


def _partition_of(e: Event) -> int:
    return _partition(e) if isinstance(e, PredictionLogged) else 0


def _feed(proc: DriftProcessor, state: DriftState, events: list[Event]) -> list[Output]:
    out: list[Output] = []
    for k in range(0, len(events), 64):
        part = events[k : k + 64]
        out += proc.handle_batch(part, state, [_partition_of(e) for e in part])
    return out


def _comparable(outputs: list[Output]) -> list[object]:
    rows: list[object] = []
    for o in outputs:
        if isinstance(o, WindowReport):  # last_report etc. are views; compare the content
            rows.append((o.model, o.version, o.window_index, o.window_start, o.verdict))
            rows.append((o.sequential, o.concept, o.concept_drifted))
        else:
            rows.append(o)
    return rows


@pytest.mark.parametrize("cut", [128, 704, 1088, 1472, 1728])  # batch boundaries
def test_restored_state_continues_like_an_uninterrupted_run(cut: int) -> None:
    events = _stream()
    proc = DriftProcessor(CONFIG)
    whole = DriftState()
    proc.assign(whole, range(PARTITIONS))
    expected = _feed(proc, whole, events) + proc.flush(whole)
    assert any(isinstance(o, WindowReport) and o.verdict.dataset_drift for o in expected)

    first = DriftState()
    proc.assign(first, range(PARTITIONS))
    got = _feed(proc, first, events[:cut])
    text = json.dumps(dump_state(proc, first), allow_nan=False)  # strict JSON, no pickle
    restarted = DriftProcessor(CONFIG)
    second = load_state(restarted, json.loads(text))
    got += _feed(restarted, second, events[cut:]) + restarted.flush(second)
    assert _comparable(got) == _comparable(expected)


def test_checkpoint_taken_under_other_settings_is_refused() -> None:
    proc = DriftProcessor(CONFIG)
    state = DriftState()
    _feed(proc, state, _stream()[:900])
    data = dump_state(proc, state)
    with pytest.raises(CheckpointError, match="other drift settings"):
        load_state(DriftProcessor(DriftConfig()), data)
    data["monitors"][0][2]["window"]["features"]["amount"]["counts"] = [1, 2]
    with pytest.raises(CheckpointError, match="malformed"):
        load_state(proc, data)


def test_adwin_rebuilt_from_recent_errors_matches_the_saved_one() -> None:
    rng = np.random.default_rng(8)
    errors = (rng.random(6000) < np.where(np.arange(6000) < 4000, 0.1, 0.3)).astype(float)
    live = ConceptDetector(0.002, 500, replay=5000)
    for e in errors[:4500]:
        live.update(float(e))
    restored = ConceptDetector.from_dict(json.loads(json.dumps(live.to_dict())))
    assert restored.baseline == live.baseline and restored.n == live.n
    assert int(restored.adwin.width) == int(live.adwin.width) <= 5000
    assert restored.estimation == pytest.approx(live.estimation, abs=1e-12)
    for e in errors[4500:]:
        live.update(float(e))
        restored.update(float(e))
    assert restored.estimation == pytest.approx(live.estimation, abs=0.02)


def test_concept_join_state_round_trips() -> None:
    """The prediction clock, each waiting prediction's ``clock_at``, labels waiting for
    their prediction and joined labels waiting for a monitor survive a dump / load."""
    events = _stream()
    preds = [e for e in events if isinstance(e, PredictionLogged)]
    labels = [e for e in events if isinstance(e, LabelObserved)]
    proc = DriftProcessor(CONFIG)
    state = DriftState()
    first = {e.prediction_id for e in preds[:100]}
    early = [x for x in labels if x.prediction_id in first]
    # labels first (they wait), then predictions (joined, waiting for the warm-up)
    proc.handle_batch([*early, *preds[:180]], state)
    lost = LabelObserved(prediction_id="never", label=1, event_time=preds[0].event_time)
    proc.handle_batch([lost], state)
    assert state.waiting and state.joined and state.pending and state.clock is not None
    data = json.loads(json.dumps(dump_state(proc, state), allow_nan=False))
    back = load_state(proc, data)
    assert back.clock == state.clock
    assert back.pending == state.pending and back.waiting == state.waiting
    assert back.joined == state.joined
    assert dump_state(proc, back) == data


def test_format_1_dump_loads_and_its_pending_predictions_join_any_label() -> None:
    proc = DriftProcessor(CONFIG)
    state = DriftState()
    _feed(proc, state, _stream()[:900])
    data = dump_state(proc, state)
    old = {k: v for k, v in data.items() if k not in ("clock", "waiting", "joined")}
    old["format"] = 1
    old["config"] = {
        k: v
        for k, v in data["config"].items()
        if k
        not in (
            "concept_label_grace_s",
            "clock_step_s",
            "max_waiting_labels",
            "max_concept_backlog",
        )
    }
    old["pending"] = [row[:5] for row in data["pending"]]
    back = load_state(proc, old)
    assert list(back.pending) == list(state.pending) and back.clock is None
    pid = next(iter(back.pending))
    late = LabelObserved(prediction_id=pid, label=0, event_time=_stream()[0].event_time)
    proc.handle_batch([late], back)
    assert pid not in back.pending and back.orphan_labels == state.orphan_labels


def test_concept_detector_restored_right_after_a_cut_restarts_adwin_like_the_live_one() -> None:
    rng = np.random.default_rng(3)
    errors = (rng.random(4000) < np.where(np.arange(4000) < 2000, 0.1, 0.5)).astype(float)
    live = ConceptDetector(0.002, 500, replay=5000)
    at = next(i for i, e in enumerate(errors) if live.update(float(e)).adwin.drift_detected)
    restored = ConceptDetector.from_dict(json.loads(json.dumps(live.to_dict())))
    for e in errors[at + 1 :]:
        assert restored.update(float(e)).drift_detected == live.update(float(e)).drift_detected
        assert int(restored.adwin.width) == int(live.adwin.width)
        assert restored.estimation == live.estimation
    assert restored.to_dict() == live.to_dict()


def test_concept_detector_restores_adwin_exactly_beyond_its_replay() -> None:
    """ADWIN's window is saved as river's own bytes: a detector restored with a window
    longer than ``replay`` cuts and alarms at the same errors as the live one (rebuilt
    from its last ``replay`` errors it cut elsewhere: a kill -9 replay published the
    concept alarm at another label)."""
    rng = np.random.default_rng(11)
    p = np.r_[np.full(4000, 0.1), np.full(4000, 0.14)]
    errors = (rng.random(p.size) < p).astype(float)
    live = ConceptDetector(0.002, 500, replay=1000)
    for e in errors[:3500]:
        live.update(float(e))
    assert int(live.adwin.width) > 1000
    data = json.loads(json.dumps(live.to_dict()))
    restored = ConceptDetector.from_dict(data)
    alarms: list[tuple[int, int]] = []
    for i, e in enumerate(errors[3500:]):
        a = live.update(float(e))
        b = restored.update(float(e))
        assert (a.drift_detected, a.estimation, a.cuts) == (b.drift_detected, b.estimation, b.cuts)
        alarms += [(i, a.cuts)] if a.drift_detected else []
    assert alarms  # the rise was found, at the same error by both
    # a dump another river wrote (bytes this one may not read) is rebuilt from errors
    other = ConceptDetector.from_dict({**data, "river": "0.0"})
    assert int(other.adwin.width) == 1000 and other.n == 3500
