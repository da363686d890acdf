"""The drift processor over in-memory events, the report renderer and the offline CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelguard.cli import main
from modelguard.contracts.common import Severity
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import (
    DriftConfig,
    DriftProcessor,
    DriftState,
    ReferenceLearned,
    WindowReport,
)
from modelguard.core.drift.report import render_html, render_text

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _events(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, start: int = 0, version: str = "v1"
) -> list[PredictionLogged]:
    out = []
    for i in range(n):
        x = float(rng.normal(shift, 1))
        p1 = float(rng.uniform(0.05, 0.95))
        out.append(
            PredictionLogged(
                prediction_id=f"p{start + i}",
                model="fraud",
                version=version,
                unit_id="u",
                event_time=T0 + timedelta(seconds=start + i),
                features={
                    "amount": x,
                    "age": int(rng.integers(18, 80)),
                    "country": str(rng.choice(["DE", "FR", "US"])),
                },
                prediction=int(p1 > 0.5),
                probabilities={"0": 1 - p1, "1": p1},
                latency_ms=1.0,
            )
        )
    return out


def _signals(outputs: list[object]) -> list[DriftSignal]:
    return [o for o in outputs if isinstance(o, DriftSignal)]


def test_warmup_learns_reference_then_flags_only_the_shifted_feature() -> None:
    rng = np.random.default_rng(0)
    proc = DriftProcessor(DriftConfig(window_events=2000, warmup_events=3000))
    state = DriftState()
    out = proc.run(
        _events(rng, 3000)
        + _events(rng, 2000, start=3000)
        + _events(rng, 2000, shift=0.6, start=5000),
        state,
    )
    learned = [o for o in out if isinstance(o, ReferenceLearned)]
    assert len(learned) == 1 and learned[0].reference.n_rows == 3000
    reports = [o for o in out if isinstance(o, WindowReport)]
    assert [r.verdict.dataset_drift for r in reports] == [False, True]
    quiet, drifted = reports
    assert not any(r.drift_detected for r in quiet.verdict.results)
    assert {f for f, r in drifted.verdict.feature_results().items() if r.drift_detected} == {
        "amount"
    }
    seq = [s for s in _signals(out) if s.test.startswith(("cusum", "ks_window", "chi2"))]
    assert seq and {s.feature for s in seq} == {"amount"}
    assert all(s.window_start >= T0 + timedelta(seconds=5000) for s in seq)
    window_signals = [s for s in _signals(out) if s.test == "ks" and s.feature == "amount"]
    assert [s.drift_detected for s in window_signals] == [False, True]
    assert window_signals[1].reference_version == learned[0].reference.reference_id
    assert window_signals[1].p_value_adjusted is not None
    assert len({s.event_id for s in _signals(out)}) == len(_signals(out))


def test_concept_drift_on_rising_error_rate() -> None:
    rng = np.random.default_rng(1)
    proc = DriftProcessor(DriftConfig(window_events=100_000, warmup_events=500))
    state = DriftState()
    events = _events(rng, 4000)
    proc.run(events[:500], state, flush=False)
    labels = []
    for i, e in enumerate(events[500:], start=500):
        wrong = rng.uniform() < (0.05 if i < 2500 else 0.3)
        label = (1 - e.prediction) if wrong else e.prediction  # type: ignore[operator]
        labels.append(
            LabelObserved(prediction_id=e.prediction_id, label=label, event_time=e.event_time)
        )
    out = proc.handle_batch(events[500:], state)
    quiet = proc.handle_batch(labels[:2000], state)
    assert [s for s in _signals(quiet) if s.drift_detected] == []
    concept = [
        s
        for s in _signals(proc.handle_batch(labels[2000:], state))
        if s.kind == "concept" and s.drift_detected
    ]
    assert concept and concept[0].severity >= Severity.MEDIUM
    assert concept[0].effect_size is not None and concept[0].effect_size > 0.05
    assert not _signals(out)


def test_report_renders_text_and_html_with_escaping() -> None:
    rng = np.random.default_rng(2)
    proc = DriftProcessor(DriftConfig(window_events=1500, warmup_events=1500))
    events = _events(rng, 1500) + _events(rng, 1500, shift=1.0, start=1500)
    out = proc.run(events)
    report = [o for o in out if isinstance(o, WindowReport)][-1]
    text = render_text(report)
    assert "Dataset drift: YES" in text
    first_feature_row = text.split("## Features by severity")[1].splitlines()[2]
    assert "amount" in first_feature_row and "DRIFT" in first_feature_row
    html = render_html(report)
    assert html.startswith("<!doctype html>") and "amount" in html and "<script" not in html


# ------------------------------------------------------------------ offline CLI


def _frame(rng: np.random.Generator, n: int, shift: float) -> dict[str, list[object]]:
    return {
        "amount": list(rng.lognormal(3 + shift, 1, n)),
        "age": [int(v) for v in rng.integers(18, 80, n)],
        "country": list(rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])),
        "prediction": [int(v) for v in rng.integers(0, 2, n)],
        "confidence": list(rng.uniform(0.5, 1, n)),
    }


def _write(path: Path, frame: dict[str, list[object]]) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.table(frame), path)
    else:
        names = list(frame)
        rows = zip(*frame.values(), strict=True)
        if path.suffix == ".csv":
            path.write_text(
                ",".join(names) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows)
            )
        else:
            path.write_text(
                "".join(json.dumps(dict(zip(names, r, strict=True))) + "\n" for r in rows)
            )
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_cli_report_matches_streaming_verdicts(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    ref = _write(tmp_path / f"ref{suffix}", _frame(rng, 4000, 0.0))
    cur_frame = _frame(rng, 2500, 0.4)
    cur = _write(tmp_path / f"cur{suffix}", cur_frame)
    saved = tmp_path / "ref.json"
    assert main(["drift", "--reference", str(ref), "--save-reference", str(saved)]) == 0
    assert (
        main(
            [
                "drift",
                "--reference",
                str(ref),
                "--current",
                str(cur),
                "--format",
                "json",
                "-o",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    offline = json.loads((tmp_path / "r.json").read_text())
    assert offline["drifted_features"] == ["amount"] and offline["dataset_drift"]

    # streaming: the same rows as events, in small batches, against the saved reference
    from modelguard.core.drift.reference import ReferenceProfile

    reference = ReferenceProfile.from_json(saved.read_text())
    proc = DriftProcessor(DriftConfig(window_events=2500))
    state = DriftState()
    proc.set_reference(state, reference)
    events = [
        PredictionLogged(
            prediction_id=f"p{i}",
            model="model",
            version="current",
            unit_id="u",
            event_time=T0 + timedelta(seconds=i),
            features={
                "amount": float(cur_frame["amount"][i]),  # type: ignore[arg-type]
                "age": cur_frame["age"][i],
                "country": cur_frame["country"][i],
            },  # type: ignore[dict-item]
            prediction=cur_frame["prediction"][i],  # type: ignore[arg-type]
            probabilities={
                "a": float(cur_frame["confidence"][i]),  # type: ignore[arg-type]
                "b": 1 - float(cur_frame["confidence"][i]),
            },  # type: ignore[arg-type]
            latency_ms=1.0,
        )
        for i in range(2500)
    ]
    out: list[object] = []
    for k in range(0, 2500, 37):
        out += proc.handle_batch(events[k : k + 37], state)
    streaming = [o for o in out if isinstance(o, WindowReport)]
    assert len(streaming) == 1
    stream_rows = {
        (r.kind, r.feature, r.test): (r.drift_detected, r.severity.name)
        for r in streaming[0].verdict.results
    }
    offline_rows = {
        (r["kind"], r["feature"], r["test"]): (r["drift_detected"], r["severity"])
        for r in offline["results"]
    }
    assert stream_rows == offline_rows


def test_cli_errors_name_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    cur = _write(tmp_path / "cur.csv", _frame(np.random.default_rng(0), 200, 0))
    assert main(["drift", "--reference", str(bad), "--current", str(cur)]) == 2
    assert f"{bad}: line 3: 1 fields, header has 2" in capsys.readouterr().err
    assert (
        main(["drift", "--reference", str(tmp_path / "missing.parquet"), "--current", str(cur)])
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"a": 1}\n{"a": NaN}\n')
    assert main(["drift", "--reference", str(nan), "--current", str(cur)]) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err
    assert main(["drift", "--reference", str(cur)]) == 2
    assert "give --current" in capsys.readouterr().err
    notparquet = tmp_path / "x.parquet"
    notparquet.write_text("hello")
    assert main(["drift", "--reference", str(notparquet), "--current", str(cur)]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err


def test_categorical_frequency_change_raises_a_sequential_alarm() -> None:
    rng = np.random.default_rng(9)
    proc = DriftProcessor(DriftConfig(window_events=100_000, warmup_events=3000))
    state = DriftState()
    quiet = _events(rng, 4000)
    shifted = _events(rng, 3000, start=4000)
    for i, e in enumerate(shifted):  # DE/FR/US 1/3 each -> 60 % US
        if i % 5 < 2:
            shifted[i] = e.model_copy(update={"features": {**e.features, "country": "US"}})
    assert _signals(proc.run(quiet, state, flush=False)) == []
    alarms = _signals(proc.handle_batch(shifted, state))
    # the sequential alarm is the early warning (its effect is measured on a window that
    # is only partly shifted when it fires); the window test confirms with the full size
    assert [(s.feature, s.test) for s in alarms] == [("country", "chi2_window")]
    assert alarms[0].effect_size is not None and alarms[0].effect_size > 0.02
    closed = [o for o in proc.flush(state) if isinstance(o, WindowReport)]
    country = closed[0].verdict.feature_results()["country"]
    assert country.drift_detected and country.severity >= Severity.LOW
    assert {f for f, r in closed[0].verdict.feature_results().items() if r.drift_detected} == {
        "country"
    }
