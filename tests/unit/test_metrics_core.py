"""Metrics core against independent oracles (scikit-learn, numpy), and its invariants."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from modelguard.contracts import LabelObserved, MetricWindowClosed, PredictionLogged
from modelguard.core.metrics import (
    Aggregate,
    LogSketch,
    MetricsConfig,
    MetricsProcessor,
    Pair,
    PartitionState,
    VersionState,
    merge_all,
    merge_window_events,
    run,
    to_event,
)
from modelguard.core.metrics.aggregate import auc_tie_bound
from tests.support.metrics import comparable

T0 = datetime(2026, 11, 1, tzinfo=UTC)
E0 = T0.timestamp()


def _probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.dirichlet(np.ones(k), size=n)


def _classification_agg(y: list[str], yhat: list[str], probs: np.ndarray | None) -> Aggregate:
    agg = Aggregate()
    classes = [str(c) for c in range(probs.shape[1])] if probs is not None else []
    for i, (a, b) in enumerate(zip(y, yhat, strict=True)):
        p = None if probs is None else {c: float(probs[i, j]) for j, c in enumerate(classes)}
        agg.add_pair(Pair.classification(a, b, p, 0.0))
    return agg


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0.001, 0.999)
    probs = np.column_stack([1 - p1, p1])
    yhat = (p1 > 0.5).astype(int)
    agg = _classification_agg([str(v) for v in y], [str(v) for v in yhat], probs)
    m = agg.metrics()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, yhat), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, yhat), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat), abs=1e-12)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, yhat, average="macro"), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-9)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p1), rel=1e-9)
    exact = skm.roc_auc_score(y, p1)
    bound = auc_tie_bound(agg, "1")
    assert 0 < bound < 0.01
    assert abs(m["auc"] - exact) <= bound + 1e-12
    assert m["n_labelled"] == n


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    n, k = 4000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    yhat = probs.argmax(axis=1)
    yhat[:50] = 3  # some systematic errors
    agg = _classification_agg([str(v) for v in y], [str(v) for v in yhat], probs)
    m = agg.metrics()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat), abs=1e-12)
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert m[name] == pytest.approx(fn(y, yhat, average="macro", zero_division=0), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-9)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, probs), rel=1e-9)
    exact = skm.roc_auc_score(y, probs, multi_class="ovr", average="macro")
    bound = max(auc_tie_bound(agg, str(c)) for c in range(k))
    assert abs(m["auc"] - exact) <= bound + 1e-12


def test_string_labels_and_unseen_predicted_class_use_macro_with_zero_division() -> None:
    y = ["cat", "dog", "cat", "bird", "dog", "dog"]
    yhat = ["cat", "cat", "cat", "dog", "fish", "dog"]
    m = _classification_agg(y, yhat, None).metrics()
    assert m["precision"] == pytest.approx(
        skm.precision_score(y, yhat, average="macro", zero_division=0)
    )
    assert m["recall"] == pytest.approx(skm.recall_score(y, yhat, average="macro", zero_division=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat, average="macro", zero_division=0))
    assert "auc" not in m and "log_loss" not in m


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 2000)
    y[:5] = 0.0  # MAPE's eps branch
    yhat = y + rng.normal(0, 1, 2000)
    agg = Aggregate()
    for a, b in zip(y, yhat, strict=True):
        agg.add_pair(Pair.regression(float(a), float(b), 1.0))
    m = agg.metrics()
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat), rel=1e-9)
    assert m["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, yhat)), rel=1e-9)
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, yhat), rel=1e-9)
    assert "accuracy" not in m and m["n_labelled"] == 2000


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_latency_quantiles_within_relative_accuracy_of_numpy(q: float) -> None:
    rng = np.random.default_rng(4)
    x = rng.lognormal(mean=2.0, sigma=1.0, size=20_000)
    s = LogSketch()
    for v in x:
        s.add(float(v))
    exact = float(np.quantile(x, q, method="lower"))
    assert abs(s.quantile(q) - exact) <= s.alpha * exact


# -- mergeability ---------------------------------------------------------------------
pair_st = st.one_of(
    st.builds(
        lambda a, b, p, d: Pair.classification(a, b, {"0": 1 - p, "1": p}, d),
        st.sampled_from([0, 1]),
        st.sampled_from([0, 1]),
        st.floats(0, 1),
        st.floats(0, 1e5),
    ),
    st.builds(
        lambda a, b, d: Pair.classification(a, b, None, d),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.floats(0, 100),
    ),
    st.builds(
        lambda a, b: Pair.regression(a, b, 0.0),
        st.floats(-1e3, 1e3),
        st.floats(-1e3, 1e3),
    ),
)
prediction_st = st.tuples(
    st.one_of(st.none(), st.sampled_from(["0", "1", "x"])),
    st.floats(0, 1e4),
    st.one_of(st.none(), st.sampled_from(["timeout", "oom"])),
)
item_st = st.one_of(pair_st, prediction_st)


def _aggregate(items: list[Any]) -> Aggregate:
    agg = Aggregate()
    for it in items:
        if isinstance(it, Pair):
            agg.add_pair(it)
        else:
            agg.add_prediction(*it)
    return agg


def _assert_same(a: Aggregate, b: Aggregate) -> None:
    da, db = a.to_dict(), b.to_dict()
    for key in ("log_loss_sum", "brier_sum", "abs_err_sum", "sq_err_sum", "ape_sum"):
        assert math.fsum(da.pop(key)) == math.fsum(db.pop(key))  # exact sums
    for key in ("latency_ms", "label_delay_s"):
        ta, tb = da[key].pop("total"), db[key].pop("total")
        assert ta == pytest.approx(tb, rel=1e-9, abs=1e-6)
    assert da == db
    ma, mb = a.metrics(), b.metrics()
    assert ma.keys() == mb.keys()
    for k in ma:
        assert ma[k] == pytest.approx(mb[k], rel=1e-9, abs=1e-9), k


@settings(max_examples=150, deadline=None)
@given(items=st.lists(item_st, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=5))
def test_merging_partials_of_any_split_equals_the_whole(items: list[Any], cuts: list[int]) -> None:
    bounds = sorted({0, len(items), *(min(c, len(items)) for c in cuts)})
    parts = [items[a:b] for a, b in itertools.pairwise(bounds)]
    merged = merge_all([_aggregate(p) for p in parts])
    _assert_same(merged, _aggregate(items))
    # and through JSON (the form carried by MetricWindowClosed and the changelog)
    _assert_same(Aggregate.from_dict(json.loads(json.dumps(merged.to_dict()))), merged)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(pair_st, min_size=1, max_size=40), n=st.integers(1, 10))
def test_removing_pairs_slides_the_last_n_window_exactly(items: list[Pair], n: int) -> None:
    agg = Aggregate()
    for i, p in enumerate(items):
        agg.add_pair(p)
        if i >= n:
            agg.add_pair(items[i - n], -1)
    _assert_same(agg, _aggregate(items[-n:]))


@settings(max_examples=150, deadline=None)
@given(items=st.lists(pair_st, max_size=80), cut=st.integers(0, 80))
def test_pairs_aggregated_in_one_go_equal_one_by_one_and_subtract_exactly(
    items: list[Pair], cut: int
) -> None:
    whole = Aggregate.of_pairs(items)
    _assert_same(whole, _aggregate(items))
    assert json.dumps(whole.to_dict(), sort_keys=True) == json.dumps(
        _aggregate(items).to_dict(), sort_keys=True
    )
    rest = Aggregate.of_pairs(items)
    rest.merge(Aggregate.of_pairs(items[:cut]), -1)
    _assert_same(rest, _aggregate(items[cut:]))


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(pair_st, min_size=1, max_size=300),
    n=st.integers(1, 150),
    reads=st.sets(st.integers(0, 299), max_size=12),
)
def test_the_lazy_last_n_window_equals_aggregating_exactly_the_last_n_pairs(
    items: list[Pair], n: int, reads: set[int]
) -> None:
    """Pairs are only appended; the aggregate, read at any points (rebuilt, or caught
    up one by one or in one go), is that of exactly the last ``n`` pairs."""
    vs = VersionState()
    for i, p in enumerate(items):
        vs.push(p, n)
        assert len(vs.recent) == min(i + 1, n)
        if i in reads:
            _assert_same(vs.recent_aggregate(), _aggregate(items[max(0, i + 1 - n) : i + 1]))
    _assert_same(vs.recent_aggregate(), _aggregate(items[-n:]))
    restored = VersionState.from_json(json.loads(json.dumps(vs.to_json())))
    _assert_same(restored.recent_aggregate(), _aggregate(items[-n:]))


@pytest.mark.parametrize("every", [7, 40, 70])  # one by one, in one go, rebuilt
def test_the_last_n_window_catches_up_exactly_whatever_the_read_cadence(every: int) -> None:
    rng = np.random.default_rng(every)
    items = []
    for i in range(500):
        p1 = float(rng.random())
        items.append(
            Pair.classification(int(rng.integers(0, 2)), i % 2, {"0": 1 - p1, "1": p1}, p1 * 9)
            if i % 5
            else Pair.regression(float(rng.normal()), float(rng.normal()), 1.0)
        )
    vs, n, reads = VersionState(), 100, 0
    for i, p in enumerate(items):
        vs.push(p, n)
        if i % every == every - 1:
            _assert_same(vs.recent_aggregate(), _aggregate(items[max(0, i + 1 - n) : i + 1]))
            reads += 1
    assert reads == 500 // every


# -- the processor ----------------------------------------------------------------------
def pred(
    i: int, t: float, model: str = "fraud", version: str = "v1", **kw: Any
) -> PredictionLogged:
    fields: dict[str, Any] = {
        "prediction": i % 2,
        "probabilities": {"0": 0.4, "1": 0.6} if i % 2 else {"0": 0.7, "1": 0.3},
        "latency_ms": 5.0 + i % 10,
    }
    fields.update(kw)
    return PredictionLogged(
        prediction_id=f"p{i}",
        model=model,
        version=version,
        unit_id=f"u{i}",
        event_time=T0 + timedelta(seconds=t),
        **fields,
    )


def label(i: int, t: float, value: Any = None, model: str | None = None) -> LabelObserved:
    return LabelObserved(
        prediction_id=f"p{i}",
        model=model,
        label=(i % 2) if value is None else value,
        event_time=T0 + timedelta(seconds=t),
    )


CFG = MetricsConfig(
    window_lengths_s=(60.0,),
    last_n=4,
    label_ttl_s=100.0,
    orphan_grace_s=30.0,
    allowed_lateness_s=5.0,
)


def test_late_out_of_order_labels_join_and_windows_close_on_the_watermark() -> None:
    events = [pred(i, i) for i in range(10)]
    events += [label(i, 20 + (9 - i), value=1) for i in range(10)]  # reversed order
    events += [pred(100, 200)]
    assert run(events, CFG, flush=False)[0].watermark == E0 + 24.0  # held back by the labels
    events += [label(99, 200)]  # both inputs now move the watermark past the first minute
    state, closed = run(events, CFG, flush=False)
    tumbling = [w for w in closed if w.kind == "tumbling"]
    assert [(w.start - E0, w.end - E0) for w in tumbling] == [(0.0, 60.0)]
    m = tumbling[0].metrics
    assert m["n_predictions"] == 10 and m["n_labelled"] == 10
    assert m["accuracy"] == pytest.approx(0.5)
    # delays: label i at 29 - i for a prediction at i -> 29 - 2i seconds, clamped at 0
    delays = [max(0, 29 - 2 * i) for i in range(10)]
    assert m["label_delay_p50_s"] == pytest.approx(
        float(np.quantile(delays, 0.5, method="lower")), rel=0.01
    )
    count_windows = [w for w in closed if w.kind == "count"]
    assert len(count_windows) == 2  # after 4 and 8 labels (last_n=4)
    assert list(state.pending) == ["p100"] and list(state.orphans) == ["p99"]


def test_ttl_expiry_orphans_duplicates_and_labels_after_ttl_are_counted() -> None:
    events = [
        pred(1, 0),
        pred(2, 0),
        label(7, 1, model="fraud"),  # orphan: prediction never comes
        pred(1, 2),  # duplicate prediction
        label(2, 3),
        label(2, 4),  # duplicate label
        label(1, 125),  # after p1's TTL (t=100): p1 expires now, not at the next sweep
        pred(3, 150),
        label(3, 150),  # watermark 145: p7 orphan (grace 30)
        label(8, 152),  # orphan for which the prediction arrives within the grace period
        pred(8, 160),
    ]
    state, closed = run(events, CFG, flush=True)
    vs = state.versions[("fraud", "v1")]
    assert (vs.n_predictions, vs.n_labelled, vs.n_expired) == (4, 3, 1)
    assert state.duplicates == {"prediction": 1, "label": 1}
    assert state.orphan_labels == {"fraud": 1}
    assert state.labels_after_ttl == 1
    assert state.late == {}  # the expiry at t=100 landed in the still open [60, 120)
    assert state.pending == {} and state.orphans == {}
    by_start = {w.start - E0: w.metrics for w in closed if w.kind == "tumbling"}
    assert by_start[0.0]["n_predictions"] == 2 and by_start[0.0]["n_labelled"] == 1
    assert by_start[60.0]["label_coverage"] == 0.0  # p1 expired at t=100
    assert by_start[120.0]["n_labelled"] == 2  # p3, and p8 joined at max(160, 152)


def test_events_for_closed_windows_are_counted_late_not_dropped_silently() -> None:
    events = [pred(1, 0), label(1, 0), pred(2, 100), label(2, 100), pred(3, 10)]
    state, closed = run(events, CFG, flush=True)
    assert state.late == {"prediction": 1}
    assert sum(w.metrics["n_predictions"] for w in closed if w.kind == "tumbling") == 2


def test_a_label_or_prediction_arriving_after_its_grace_or_ttl_is_counted_at_once() -> None:
    events = [pred(1, 500), label(1, 500), label(2, 10, model="fraud"), pred(3, 20)]
    state, _ = run(events, CFG, flush=False)
    assert state.orphan_labels == {"fraud": 1} and state.orphans == {}
    assert state.versions[("fraud", "v1")].n_expired == 1 and state.pending == {}
    assert state.late == {"prediction": 1, "expiry": 1}  # p3 expired into a closed window


def test_an_input_never_seen_delays_windows_by_the_max_input_lag_only() -> None:
    state, closed = run([pred(1, 0), pred(2, 300)], CFG, flush=False)
    assert state.watermark == E0 + 295 - 300 and closed == []
    state, closed = run([pred(1, 0), pred(2, 400)], CFG, flush=False)
    assert [w.start - E0 for w in closed if w.kind == "tumbling"] == [0.0]


def test_unknown_models_errors_and_regression_are_tracked_without_configuration() -> None:
    events = [
        pred(1, 0, model="brand-new", version="v9"),
        pred(2, 1, model="brand-new", version="v9", prediction=None, error_type="timeout"),
        pred(3, 2, model="price", task="regression", prediction=10.0, probabilities=None),
        label(3, 3, value=12.5),
        pred(4, 4, model="price", task="regression", prediction=1.0, probabilities=None),
        label(4, 5, value="not-a-number"),
    ]
    state, closed = run(events, CFG)
    assert state.versions[("brand-new", "v9")].errors == {"timeout": 1}
    m = {(w.model, w.kind): w.metrics for w in closed}
    assert m[("brand-new", "tumbling")]["error_rate"] == 0.5
    assert m[("brand-new", "tumbling")]["error_rate.timeout"] == 0.5
    assert m[("price", "tumbling")]["mae"] == 2.5
    assert state.invalid_labels == 1


def test_baseline_drop_and_accuracy_degraded_flag() -> None:
    cfg = MetricsConfig(
        window_lengths_s=(60.0,), last_n=200, baselines={"fraud": 0.9}, min_labelled_for_drift=100
    )
    events: list[Any] = []
    for i in range(400):
        events.append(pred(i, i * 0.1))
        correct = (i % 10 != 0) if i < 200 else (i % 2 == 0)  # 90% then 50%
        events.append(label(i, i * 0.1, value=(i % 2) if correct else 1 - i % 2))
    state, closed = run(events, cfg, flush=False)
    counts = [w.metrics for w in closed if w.kind == "count"]
    assert counts[0]["accuracy"] == pytest.approx(0.9)
    assert counts[0]["accuracy_degraded"] == 0.0
    assert counts[1]["accuracy"] == pytest.approx(0.5)
    assert counts[1]["accuracy_drop_percent"] == pytest.approx((0.9 - 0.5) / 0.9 * 100)
    assert counts[1]["accuracy_degraded"] == 1.0
    assert counts[1]["accuracy_trend"] == pytest.approx(-0.4)
    live = MetricsProcessor(cfg).live([state], "fraud", "v1")
    assert live["accuracy"] == pytest.approx(0.5) and live["accuracy_degraded"] == 1.0
    assert "concept_drift" not in live  # concept drift is the drift processor's gauge


def _stream(seed: int, n: int) -> tuple[list[PredictionLogged], list[LabelObserved]]:
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for i in range(n):
        t = i * 0.5
        preds.append(pred(i, t, version=f"v{i % 2}", latency_ms=float(rng.uniform(1, 50))))
        if rng.random() < 0.8:
            labels.append(label(i, t + float(rng.uniform(0, 3)), value=int(rng.integers(0, 2))))
    labels.sort(key=lambda e: e.event_time)
    return preds, labels


def _interleave(a: list[Any], b: list[Any], rng: np.random.Generator) -> list[Any]:
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        take_a = j >= len(b) or (i < len(a) and rng.random() < 0.5)
        if take_a:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def _comparable(closed: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (w.event_id, json.dumps(w.aggregate.to_dict(), sort_keys=True))
        for w in closed
        if w.kind == "tumbling"
    )


def test_closed_windows_do_not_depend_on_how_the_two_topics_interleave() -> None:
    preds, labels = _stream(5, 600)
    cfg = MetricsConfig(window_lengths_s=(60.0, 300.0), last_n=50)
    results = {
        json.dumps(_comparable(run(_interleave(preds, labels, np.random.default_rng(s)), cfg)[1]))
        for s in range(4)
    }
    assert len(results) == 1


def test_restart_from_a_json_checkpoint_equals_an_uninterrupted_run() -> None:
    preds, labels = _stream(6, 400)
    events = _interleave(preds, labels, np.random.default_rng(0))
    cfg = MetricsConfig(window_lengths_s=(60.0,), last_n=30)
    _, whole = run(events, cfg)
    cut = 317
    state, first = run(events[:cut], cfg, flush=False)
    restored = PartitionState.from_json(json.loads(json.dumps(state.to_json())))
    # replaying events already in the checkpoint must not double count (dedup by id)
    _, second = run(events[cut - 40 :], cfg, state=restored)
    assert _comparable(first + second) == _comparable(whole)
    assert len([w for w in first + second if w.kind == "count"]) == len(
        [w for w in whole if w.kind == "count"]
    )


def test_window_event_round_trip_and_merge_of_partitions() -> None:
    preds, labels = _stream(7, 300)
    events = _interleave(preds, labels, np.random.default_rng(1))
    cfg = MetricsConfig(window_lengths_s=(60.0,))
    _, whole = run(events, cfg)
    by_partition: list[MetricWindowClosed] = []
    for p in range(3):
        part = [e for e in events if int(e.prediction_id[1:]) % 3 == p]
        _, closed = run(part, cfg, state=PartitionState(partition=p))
        by_partition += [to_event(w, T0) for w in closed if w.kind == "tumbling"]
    for w in (w for w in whole if w.kind == "tumbling"):
        parts = [
            e
            for e in by_partition
            if (e.version, e.window_start) == (w.version, datetime.fromtimestamp(w.start, UTC))
        ]
        parts = [MetricWindowClosed.model_validate_json(e.model_dump_json()) for e in parts]
        agg, metrics = merge_window_events(parts + parts[:1])  # a replayed duplicate
        _assert_same(agg, w.aggregate)
        assert metrics["accuracy"] == pytest.approx(w.metrics["accuracy"])


# -- issue 11: no event crashes the core; event time; order independence; memory --------
def _raw_prediction(i: int, t: float, **kw: Any) -> PredictionLogged:
    """A prediction built without validation (what a bug upstream could hand the core)."""
    fields: dict[str, Any] = {
        "prediction_id": f"p{i}",
        "model": "fraud",
        "version": "v1",
        "unit_id": "u",
        "experiment_id": None,
        "event_time": T0 + timedelta(seconds=t),
        "task": "classification",
        "features": {},
        "prediction": 1,
        "probabilities": None,
        "score": None,
        "latency_ms": 1.0,
        "stage_latency_ms": None,
        "error_type": None,
    }
    fields.update(kw)
    return PredictionLogged.model_construct(**fields)


def test_windows_build_for_any_class_string() -> None:
    # "not fraud" (whitespace) and a 200-character class made the window's
    # class_share.<class> key invalid at close (MetricWindowClosed rejected it)
    odd = ["not fraud", "x" * 200, "tab\there", "ok"]
    events: list[Any] = [_raw_prediction(i, i, prediction=c) for i, c in enumerate(odd)]
    events += [label(i, 10 + i, value=c) for i, c in enumerate(odd[-1:])]
    _, closed = run(events, CFG, flush=True)
    tumbling = [w for w in closed if w.kind == "tumbling"]
    assert tumbling
    for w in tumbling:
        event = to_event(w, T0)  # validates every metric key
        shares = {k: v for k, v in event.metrics.items() if k.startswith("class_share.")}
        assert len(shares) == len(odd) and sum(shares.values()) == pytest.approx(1.0)
    assert "class_share.ok" in tumbling[0].metrics
    assert "class_share.not fraud" not in tumbling[0].metrics


def test_regression_values_beyond_the_bound_are_counted_invalid_not_raised() -> None:
    events = [
        _raw_prediction(1, 0, task="regression", prediction=10**400),  # overflowed float()
        label(1, 1, value=3.0),
        _raw_prediction(2, 0, task="regression", prediction=1e300),  # squared: inf
        LabelObserved.model_construct(
            prediction_id="p2", model=None, label=-1e300, event_time=T0 + timedelta(seconds=1)
        ),
        _raw_prediction(3, 0, task="regression", prediction=2.0),
        label(3, 1, value=3.0),
    ]
    state, closed = run(events, CFG, flush=True)
    assert state.invalid_labels == 2
    tumbling = [w for w in closed if w.kind == "tumbling"]
    assert tumbling[0].metrics["mae"] == 1.0
    to_event(tumbling[0], T0)


def test_regression_predictions_are_counted_per_version() -> None:
    events = [pred(1, 0, task="regression", prediction=2.5, probabilities=None)]
    events += [pred(2, 1)]
    state, _ = run(events, CFG, flush=False)
    assert state.versions[("fraud", "v1")].predicted == {"": 1, "0": 1}


def test_an_event_far_ahead_of_its_arrival_is_clamped_and_cannot_stall_the_watermark() -> None:
    # Before: one valid event dated years ahead moved the watermark there; every later
    # event on the partition was late and no window closed again.
    far = (datetime(2099, 12, 31, tzinfo=UTC) - T0).total_seconds()
    events: list[Any] = []
    arrivals: list[float] = []
    for i in range(200):
        t = float(i)
        events += [pred(i, far if i == 5 else t), label(i, far if i == 7 else t + 1)]
        arrivals += [E0 + t, E0 + t + 1]
    cfg = MetricsConfig(window_lengths_s=(60.0,), last_n=4, label_ttl_s=100.0)
    state, closed = run(events, cfg, flush=False, arrivals=arrivals)
    assert state.clamped == {"prediction": 1, "label": 1}
    assert state.late == {}
    assert state.watermark < E0 + 200
    starts = [w.start - E0 for w in closed if w.kind == "tumbling"]
    assert starts == [0.0, 60.0, 120.0]  # the windows before t=190 closed on time


def test_events_a_little_ahead_of_arrival_make_no_on_time_event_late() -> None:
    # A few events ten minutes in the future made 74% of predictions late.
    events: list[Any] = []
    arrivals: list[float] = []
    for i in range(600):
        t = i * 0.5
        ahead = 600.0 if i % 100 == 3 else 0.0
        events += [pred(i, t + ahead), label(i, t + ahead + 0.5)]
        arrivals += [E0 + t, E0 + t + 0.5]
    state, closed = run(events, MetricsConfig(window_lengths_s=(60.0,)), arrivals=arrivals)
    assert state.late == {}
    assert state.clamped == {"prediction": 6, "label": 6}
    assert sum(w.metrics["n_predictions"] for w in closed if w.kind == "tumbling") == 600


def test_arrival_is_optional_and_a_timely_event_is_not_clamped() -> None:
    events = [pred(1, 0), label(1, 3)]
    with_arrival, _ = run(events, CFG, arrivals=[E0 - 4.0, E0 - 1.0])  # 4 s ahead: < 5 s
    without, _ = run(events, CFG)
    assert with_arrival.clamped == {} and with_arrival.to_json() == without.to_json()


ORDER_CFG = MetricsConfig(
    window_lengths_s=(20.0, 60.0),
    last_n=5,
    label_ttl_s=50.0,
    orphan_grace_s=15.0,
    allowed_lateness_s=5.0,
    max_input_lag_s=1e7,  # the property needs the inputs within it
    baselines={"fraud": 0.8},  # (otherwise learnt from a count window: order dependent)
)


@st.composite
def _two_streams(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """Predictions and labels, each in event-time order within the allowed lateness;
    labels before (beyond the grace), within and after the TTL, missing, duplicated."""
    n = draw(st.integers(5, 40))
    lateness = ORDER_CFG.allowed_lateness_s
    preds: list[tuple[float, Any]] = []
    labels: list[tuple[float, Any]] = []
    base = 0.0
    for i in range(n):
        base += draw(st.floats(0.0, 6.0))
        t = base + draw(st.floats(0.0, lateness * 0.99))
        p = pred(i, t, prediction=draw(st.integers(0, 1)))
        preds.append((base, p))
        if draw(st.booleans()) and draw(st.booleans()):
            preds.append((base, p))  # an exact duplicate
        fate = draw(st.sampled_from(["none", "before", "near", "in", "late"]))
        if fate == "none":
            continue
        delay = {
            "before": draw(st.floats(-40.0, -16.0)),
            "near": draw(st.sampled_from([-15.0, 49.999, 50.0, 50.001])),
            "in": draw(st.floats(-14.0, 49.0)),
            "late": draw(st.floats(50.0, 120.0)),
        }[fate]
        lbase = base + delay
        lab = LabelObserved(
            prediction_id=f"p{i}",
            label=draw(st.integers(0, 1)),
            event_time=T0 + timedelta(seconds=lbase + draw(st.floats(0.0, lateness * 0.99))),
        )
        labels.append((lbase, lab))
        if draw(st.integers(0, 5)) == 0:
            labels.append((lbase, lab))
    preds.sort(key=lambda x: x[0])
    labels.sort(key=lambda x: x[0])
    return [p for _, p in preds], [lab for _, lab in labels]


def _outcome(state: PartitionState) -> tuple[Any, ...]:
    vs = state.versions.get(("fraud", "v1"))
    totals = (0, 0, 0) if vs is None else (vs.n_predictions, vs.n_labelled, vs.n_expired)
    fates = (state.labels_after_ttl, state.orphan_labels, state.duplicates, len(state.orphans))
    return totals + fates


@settings(max_examples=150, deadline=None)
@given(streams=_two_streams(), data=st.data())
def test_closed_windows_do_not_depend_on_interleaving_or_restore_points(
    streams: tuple[list[Any], list[Any]], data: st.DataObject
) -> None:
    preds, labels = streams
    reference = sorted(preds + labels, key=lambda e: 0 if e in preds else 1)  # preds first
    ref_state, ref_closed = run(reference, ORDER_CFG)
    # another interleaving of the two streams, with checkpoint/restore at random points
    picks = data.draw(st.lists(st.booleans(), min_size=len(preds) + len(labels)))
    order: list[Any] = []
    i = j = 0
    for take_pred in picks:
        if (take_pred and i < len(preds)) or j >= len(labels):
            if i < len(preds):
                order.append(preds[i])
                i += 1
        else:
            order.append(labels[j])
            j += 1
    order += preds[i:] + labels[j:]
    restore_at = set(data.draw(st.lists(st.integers(0, len(order)), max_size=4)))
    processor = MetricsProcessor(ORDER_CFG)
    state = PartitionState()
    closed: list[Any] = []
    for k, event in enumerate(order):
        if k in restore_at:  # what a restart from the changelog sees
            state = PartitionState.from_json(json.loads(json.dumps(state.to_json())))
        state, out = processor.handle(event, state)
        closed += out
    closed += processor.flush(state)
    assert comparable(closed, "tumbling") == comparable(ref_closed, "tumbling")
    assert _outcome(state) == _outcome(ref_state)
    assert state.late == {} == ref_state.late


def test_a_label_after_the_ttl_never_joins_whether_or_not_the_sweep_ran() -> None:
    # Before: a label 60 s after its prediction (TTL 50 s) joined when it came before the
    # expiry sweep, and was "after TTL" when it came after it.
    events = [pred(1, 0), label(1, 60)]
    state, _ = run(events, ORDER_CFG)
    assert state.labels_after_ttl == 1
    vs = state.versions[("fraud", "v1")]
    assert (vs.n_labelled, vs.n_expired) == (0, 1)


def test_an_early_orphan_label_does_not_join_a_prediction_after_its_grace() -> None:
    events = [label(1, 0), pred(1, 20), pred(2, 40), label(2, 40)]  # grace 15 s: an orphan
    state, _ = run(events, ORDER_CFG)
    assert state.orphan_labels == {"": 1}
    assert state.versions[("fraud", "v1")].n_labelled == 1  # p2 only


def test_memory_bounds_evict_the_oldest_and_count_them() -> None:
    cfg = MetricsConfig(window_lengths_s=(60.0,), max_pending=10, max_orphans=5, max_remembered=20)
    events: list[Any] = [pred(i, i * 0.01) for i in range(50)]
    events += [label(1000 + i, 0.5 + i * 0.01) for i in range(30)]  # no prediction
    state, _ = run(events, cfg, flush=False)
    assert len(state.pending) <= 10 and len(state.orphans) <= 5
    assert len(state.expired) <= 20
    evicted = state.overflow["prediction"]
    assert evicted == 50 - len(state.pending)
    assert state.versions[("fraud", "v1")].n_expired == evicted
    assert state.overflow["label"] == 30 - len(state.orphans)
    assert state.orphan_labels[""] == state.overflow["label"]
    assert state.overflow["id"] == evicted - len(state.expired)
    assert list(state.pending) == [f"p{i}" for i in range(50 - len(state.pending), 50)]
    # a restart keeps the counts
    assert PartitionState.from_json(json.loads(json.dumps(state.to_json()))).overflow == (
        state.overflow
    )
