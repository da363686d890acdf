"""The drift processor's state as a JSON value, so a worker can checkpoint and resume.

:func:`dump_state` / :func:`load_state` cover everything that shapes later outputs:
references, per-version window accumulators (with the window's index and span),
sequential detectors, the alarms already sent in the open window, the concept-drift
baseline and ADWIN (rebuilt from its recent errors, see ``ConceptDetector``), warm-up buffers,
predictions waiting for their label (with the prediction clock right after each), the
prediction clock, labels waiting for their prediction, joined labels waiting for their
version's monitor, and the partition watermarks. A state restored
from a dump and fed the rest of a stream gives the outputs of an uninterrupted run
(``tests/unit/test_drift_checkpoint.py``). The dump names the settings it was taken
with; restoring under other settings raises :class:`CheckpointError` (thresholds and
window sizes would not match the saved detector state). A format-1 dump (before the
prediction clock) still loads: its waiting predictions join any label, as they did.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift.accumulators import WindowAccumulator
from modelguard.core.drift.concept import ConceptDetector
from modelguard.core.drift.events import Observation
from modelguard.core.drift.processor import DriftProcessor
from modelguard.core.drift.reference import ReferenceProfile, category_of
from modelguard.core.drift.state import DriftState, ModelMonitor

FORMAT = 2
#: formats :func:`load_state` reads (1: before the prediction clock, issue 11 #9)
READABLE = frozenset({1, 2})
#: what a format-1 waiting prediction's ``clock_at`` becomes: it joins any label
_BEFORE_CLOCK = datetime.min.replace(tzinfo=UTC)


class CheckpointError(ValueError):
    """A dump that cannot be restored here (other format, settings or references)."""


def _time(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _parse_time(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


_NONFINITE = "$nonfinite"


def _enc(v: object) -> object:
    """A raw value as strict JSON that decodes to a value the processor treats the same:
    non-finite floats are tagged, ints too long for JSON text become their category
    label (as numbers they are type errors either way)."""
    if isinstance(v, float) and not math.isfinite(v):
        return {_NONFINITE: repr(v)}
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 4_096:
        return category_of(v)
    return v


def _dec(v: object) -> object:
    if isinstance(v, dict) and set(v) == {_NONFINITE}:
        return float(v[_NONFINITE])
    return v


def _obs_to_dict(o: Observation) -> dict[str, Any]:
    return {
        "model": o.model,
        "version": o.version,
        "event_time": o.event_time.isoformat(),
        "features": {k: _enc(v) for k, v in o.features.items()},
        "prediction": _enc(o.prediction),
        "confidence": _enc(o.confidence),
        "prediction_id": o.prediction_id,
        "task": o.task,
    }


def _obs_from_dict(d: Mapping[str, Any]) -> Observation:
    return Observation(
        model=str(d["model"]),
        version=str(d["version"]),
        event_time=datetime.fromisoformat(d["event_time"]),
        features={str(k): _dec(v) for k, v in d["features"].items()},
        prediction=_dec(d["prediction"]),
        confidence=None if d["confidence"] is None else float(_dec(d["confidence"])),  # type: ignore[arg-type]
        prediction_id=d["prediction_id"],
        task=str(d["task"]),
    )


def _monitor_to_dict(mon: ModelMonitor) -> dict[str, Any]:
    return {
        "version": mon.version,
        "reference_id": mon.reference.reference_id,
        "window": mon.window.to_dict(),
        "window_index": mon.window_index,
        "window_start": _time(mon.window_start),
        "window_end": _time(mon.window_end),
        "numeric": {k: d.state_dict() for k, d in mon.numeric.items()},
        "categorical": {k: d.state_dict() for k, d in mon.categorical.items()},
        "concept": None if mon.concept is None else mon.concept.to_dict(),
        "seq_signals": [s.model_dump(mode="json") for s in mon.seq_signals],
        "alarmed": sorted(mon.alarmed),
        "concept_signals": [s.model_dump(mode="json") for s in mon.concept_signals],
        "origin": mon.origin,
    }


def dump_state(processor: DriftProcessor, state: DriftState) -> dict[str, Any]:
    """``state`` as a JSON value (no NaN: every float in it is finite)."""
    refs: dict[str, ReferenceProfile] = {}
    for ref in state.references.values():
        refs[ref.reference_id] = ref
    for mon in state.monitors.values():
        refs[mon.reference.reference_id] = mon.reference
    return {
        "format": FORMAT,
        "config": dataclasses.asdict(processor.config),
        "references": {k: r.to_dict() for k, r in refs.items()},
        "installed": [
            [model, version, ref.reference_id] for (model, version), ref in state.references.items()
        ],
        "monitors": [
            [model, version, _monitor_to_dict(mon)]
            for (model, version), mon in state.monitors.items()
        ],
        "warmup": [
            [model, version, [_obs_to_dict(o) for o in obs]]
            for (model, version), obs in state.warmup.items()
        ],
        "pending": [
            [pid, model, version, _enc(prediction), task, clock_at.isoformat()]
            for pid, (model, version, prediction, task, clock_at) in state.pending.items()
        ],
        "clock": _time(state.clock),
        "waiting": [[pid, _enc(label), t.isoformat()] for pid, label, t in state.waiting],
        "joined": [
            [
                model,
                version,
                [[task, _enc(p), _enc(y), t.isoformat()] for task, p, y, t in queue],
            ]
            for (model, version), queue in state.joined.items()
        ],
        "orphan_labels": state.orphan_labels,
        "label_overflow": state.label_overflow,
        "pending_evicted": state.pending_evicted,
        "concept_backlog_dropped": state.concept_backlog_dropped,
        "sources": None if state.sources is None else sorted(state.sources),
        "stream": state.stream,
        "watermarks": {str(p): t.isoformat() for p, t in state.watermarks.items()},
        "warmup_dropped": state.warmup_dropped,
        "warmup_dropped_by_version": [
            [model, version, n] for (model, version), n in state.warmup_dropped_by_version.items()
        ],
    }


def load_state(processor: DriftProcessor, data: Mapping[str, Any]) -> DriftState:
    """The inverse of :func:`dump_state` for a processor with the same settings."""
    if data.get("format") not in READABLE:
        raise CheckpointError(f"unknown drift checkpoint format {data.get('format')!r}")
    config = dataclasses.asdict(processor.config)
    if data["format"] == 1:  # its settings predate the concept join's: compare the rest
        config = {k: v for k, v in config.items() if k in data["config"]}
    if data["config"] != config:
        raise CheckpointError("the checkpoint was taken with other drift settings")
    try:
        return _load(processor, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"malformed drift checkpoint: {exc!r}") from None


def _load(processor: DriftProcessor, data: Mapping[str, Any]) -> DriftState:
    cfg = processor.config
    refs = {k: ReferenceProfile.from_dict(v) for k, v in data["references"].items()}
    state = DriftState()
    for model, version, ref_id in data["installed"]:
        state.references[(model, version)] = refs[ref_id]
    for model, version, m in data["monitors"]:
        ref = refs[m["reference_id"]]
        mon = processor.new_monitor(ref, str(m["version"]))  # fresh, then its saved state
        state.monitors[(model, version)] = mon
        mon.window = WindowAccumulator.from_dict(m["window"], ref)
        mon.window_index = int(m["window_index"])
        mon.window_start = _parse_time(m["window_start"])
        mon.window_end = _parse_time(m["window_end"])
        if set(m["numeric"]) != set(mon.numeric) or set(m["categorical"]) != set(mon.categorical):
            raise CheckpointError("sequential detectors do not match the reference")
        for k, d in m["numeric"].items():
            mon.numeric[k].load_state(d)
        for k, d in m["categorical"].items():
            mon.categorical[k].load_state(d)
        if m["concept"] is not None:
            # dumps before the detector contract hold only the state: the parameters
            # are the settings (checked equal above)
            params = {
                "delta": cfg.adwin_delta,
                "baseline_labels": cfg.concept_baseline_labels,
                "replay": cfg.adwin_replay,
            }
            mon.concept = ConceptDetector.from_dict({**params, **m["concept"]})
        mon.seq_signals = [DriftSignal.model_validate(s) for s in m["seq_signals"]]
        mon.alarmed = set(m["alarmed"])
        mon.concept_signals = [DriftSignal.model_validate(s) for s in m["concept_signals"]]
        mon.origin = str(m.get("origin", ""))
    for model, version, obs in data["warmup"]:
        state.warmup[(model, version)] = [_obs_from_dict(o) for o in obs]
    state.pending = OrderedDict(
        (
            str(pid),
            (
                str(model),
                str(version),
                _dec(prediction),
                str(task),
                datetime.fromisoformat(at[0]) if at else _BEFORE_CLOCK,
            ),
        )
        for pid, model, version, prediction, task, *at in data["pending"]
    )
    state.clock = _parse_time(data.get("clock"))
    state.waiting = deque(
        (str(pid), _dec(label), datetime.fromisoformat(t))
        for pid, label, t in data.get("waiting", [])
    )
    state.joined = {
        (str(model), str(version)): deque(
            (str(task), _dec(p), _dec(y), datetime.fromisoformat(t)) for task, p, y, t in queue
        )
        for model, version, queue in data.get("joined", [])
    }
    state.orphan_labels = int(data["orphan_labels"])
    state.label_overflow = int(data.get("label_overflow", 0))
    state.pending_evicted = int(data.get("pending_evicted", 0))
    state.concept_backlog_dropped = int(data.get("concept_backlog_dropped", 0))
    state.sources = None if data["sources"] is None else frozenset(data["sources"])
    state.stream = str(data.get("stream", ""))
    state.watermarks = {int(p): datetime.fromisoformat(t) for p, t in data["watermarks"].items()}
    state.warmup_dropped = int(data["warmup_dropped"])
    state.warmup_dropped_by_version = {
        (str(model), str(version)): int(n)
        for model, version, n in data.get("warmup_dropped_by_version", [])
    }
    return state
