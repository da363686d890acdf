"""Per-partition partial metric windows are merged into one window before judgement.

The metrics processor publishes one ``MetricWindowClosed`` per source partition of a
window (with its mergeable aggregate). The controller must judge whole windows: two
partials of one window are not two consecutive breaches, minimum sample sizes apply to
the whole window, and any split of the window's traffic over partitions (in any arrival
order, with replays) gives the same window and the same verdict as no split at all."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.contracts.common import WindowSpec
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control import ModelState, RoutingView, assess, decide, observe, run
from modelguard.core.control.evidence import WindowRecord
from modelguard.core.control.machine import evidence_for
from modelguard.core.control.policy import Policy, parse_policies
from modelguard.core.metrics import Aggregate, ClosedWindow, Pair, to_event

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
L = 10.0  # window length (seconds)

POLICY_YAML = """
models:
  fraud:
    window: tumbling:10
    cooldown_seconds: 120
    clear_after_windows: 2
    partial_grace_seconds: {grace}
    partial_timeout_seconds: 30
    guardrails:
      - {{name: errors, kind: error_rate, threshold: 0.03, min_samples: 100, consecutive: 2}}
      - {{name: accuracy, kind: accuracy_drop, max_drop_percent: 5, min_samples: 100,
          consecutive: 2}}
      - {{name: latency, kind: latency, threshold: 200, min_samples: 100}}
    rollout: {{steps: [5, 25, 50, 100], hold_seconds: 1000, min_samples_per_step: 100}}
"""


def policy(grace: float = 0.0) -> Policy:
    return parse_policies(POLICY_YAML.format(grace=grace))["fraud"]


RAMPING = RoutingView(weights={"v1": 0.95, "v2": 0.05}, revision=4)

# One served prediction: (predicted class, label or None, latency ms, failed)
Row = tuple[str, str | None, float, bool]


def aggregate(rows: list[Row]) -> Aggregate:
    agg = Aggregate()
    for pred, label, latency, failed in rows:
        agg.add_prediction(None if failed else pred, latency, "timeout" if failed else None)
        if label is not None and not failed:
            agg.add_pair(Pair.classification(label, pred, {"1": 0.7, "0": 0.3}, 1.5))
    return agg


def partial(
    i: int,
    rows: list[Row],
    *,
    version: str = "v2",
    partition: int | None = 0,
    extra: dict[str, float] | None = None,
) -> MetricWindowClosed:
    """The processor's event for window ``i`` of ``rows`` on ``partition`` (None: the
    unsplit window, ``partitions=[]``)."""
    agg = aggregate(rows)
    window = ClosedWindow(
        "fraud",
        version,
        "tumbling",
        L,
        None,
        T0.timestamp() + L * i,
        T0.timestamp() + L * (i + 1),
        partition or 0,
        agg,
        {**agg.metrics(), **(extra or {})},
    )
    event = to_event(window, emitted_at=T0 + timedelta(seconds=L * (i + 1) + 1))
    return event.model_copy(update={"partitions": []}) if partition is None else event


def rows(n: int, *, acc: float = 0.95, errors: float = 0.0, latency: float = 20.0) -> list[Row]:
    """``n`` labelled binary predictions with accuracy ``acc`` and error share ``errors``."""
    out: list[Row] = []
    n_err = round(n * errors)
    n_ok = n - n_err
    n_right = round(n_ok * acc)
    for k in range(n):
        if k < n_err:
            out.append(("1", "1", latency, True))
        else:
            right = k - n_err < n_right
            out.append(("1", "1" if right else "0", latency, False))
    return out


def split(
    i: int, window_rows: list[Row], parts: int = 3, version: str = "v2"
) -> list[MetricWindowClosed]:
    """Window ``i`` as ``parts`` partials (round-robin split, like keys over partitions)."""
    return [partial(i, window_rows[p::parts], version=version, partition=p) for p in range(parts)]


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=L * (i + 1) + 2)


def stream(
    n: int, bad_from: int | None, parts: int = 3
) -> list[tuple[datetime, MetricWindowClosed | DriftSignal | None]]:
    out: list[tuple[datetime, MetricWindowClosed | DriftSignal | None]] = []
    for i in range(n):
        for v in ("v1", "v2"):
            bad = v == "v2" and bad_from is not None and i >= bad_from
            for e in split(i, rows(150, acc=0.8 if bad else 0.95), parts, version=v):
                out.append((at(i), e))
    return out


def same_window(a: WindowRecord, b: WindowRecord) -> None:
    """Equal windows up to the ids and partition bookkeeping (floats to rounding)."""
    keys = ("version", "window", "window_start", "window_end", "n_predictions", "n_labelled")
    assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]
    assert a.n_errors == b.n_errors
    assert set(a.metrics) == set(b.metrics)
    for k, x in a.metrics.items():
        assert math.isclose(x, b.metrics[k], rel_tol=1e-12, abs_tol=1e-12), (k, x, b.metrics[k])


# --- the bug: partials are not windows ----------------------------------------------


def test_partials_of_one_bad_window_are_one_window_not_a_consecutive_breach() -> None:
    p = policy()
    state = ModelState(model="fraud")
    for v in ("v1", "v2"):
        for e in split(0, rows(150, acc=0.8 if v == "v2" else 0.95), version=v):
            observe(state, e, p, partitions=3)
    assert [len(state.windows[v]) for v in ("v1", "v2")] == [1, 1]
    assert state.pending == {}
    (w,) = state.windows["v2"]
    assert (w.n_predictions, w.n_labelled, w.partitions, w.complete) == (150, 150, [0, 1, 2], True)
    state, decisions = decide(p, state, RAMPING, at(0))
    assert decisions == []  # one bad window: consecutive 2 is not met yet
    verdict = assess(p, evidence_for(state, "v2", at(0)))
    assert verdict.status == "inconclusive"
    assert "pending breach" in verdict.reason and "in 1 window(s) over 10s" in verdict.reason


def test_rollback_needs_two_merged_windows() -> None:
    _, table, decisions = run(policy(), stream(6, bad_from=2), RAMPING, partitions=3)
    assert [d.action for d in decisions] == ["rollback"]
    (rb,) = decisions
    assert table.weights == {"v1": 1.0, "v2": 0.0}
    breach = [e for e in rb.evidence if e["status"] == "breach"]
    assert breach and all(e["samples"] == 150 for e in breach)
    assert rb.decided_at == at(3)  # the second bad window, not the second partial
    assert "in 2 window(s) over 20s" in rb.reason


def test_minimum_samples_apply_to_the_merged_window() -> None:
    # 150 samples per window split in three: every partial is below min_samples (100)
    _, _, decisions = run(policy(), stream(4, bad_from=0), RAMPING, partitions=3)
    assert [d.action for d in decisions] == ["rollback"]
    # without knowing the partition count, the event time merges them as well
    _, _, later = run(policy(), stream(5, bad_from=0), RAMPING, partitions=None)
    assert [d.action for d in later] == ["rollback"]
    assert later[0].decided_at == at(2)  # window 1 merged once window 2 was seen


def test_replayed_partials_do_not_double_count_even_once_forgotten_by_seen() -> None:
    p = policy()
    state = ModelState(model="fraud")
    parts = split(0, rows(150))
    observe(state, parts[0], p, partitions=3)
    assert not observe(state, parts[0], p, partitions=3)
    state.seen.clear()  # the bounded id list forgot it: the pending window still knows
    observe(state, parts[0], p, partitions=3)
    observe(state, parts[1], p, partitions=3)
    assert len(state.pending) == 1 and next(iter(state.pending.values())).n_predictions == 100
    assert observe(state, parts[2], p, partitions=3)
    assert state.windows["v2"][0].n_predictions == 150


def test_missing_partition_merged_once_event_time_passes_the_grace() -> None:
    p = policy(grace=15.0)
    state = ModelState(model="fraud")
    two = split(0, rows(150))[:2]  # partition 2 had no v2 traffic in window 0
    for e in two:
        assert not observe(state, e, p, partitions=3)
    assert not observe(state, partial(1, rows(50), version="v1", partition=0), p, partitions=3)
    assert "v2" not in state.windows  # 20 s < window end + 15 s: still waiting
    assert observe(state, partial(2, rows(50), version="v1", partition=0), p, partitions=3)
    (w,) = state.windows["v2"]
    assert (w.n_predictions, w.partitions, w.complete) == (100, [0, 1], False)
    # the straggler arrives after all: counted as late, not judged twice
    assert not observe(state, split(0, rows(150))[2], p, partitions=3)
    assert state.late_partials == 1 and len(state.windows["v2"]) == 1


def test_missing_partition_merged_after_the_timeout_when_traffic_stops() -> None:
    p = policy()
    state = ModelState(model="fraud")
    for e in split(0, rows(150))[:2]:
        observe(state, e, p, partitions=3)
    first_emitted = T0 + timedelta(seconds=L + 1)
    s1, _ = decide(p, state, RAMPING, first_emitted + timedelta(seconds=29))
    assert "v2" not in s1.windows and len(s1.pending) == 1
    s2, _ = decide(p, state, RAMPING, first_emitted + timedelta(seconds=30))
    assert s2.pending == {} and s2.windows["v2"][0].n_predictions == 100
    assert state.pending  # decide returns a new state


def test_unsplit_and_count_windows_pass_through_unchanged() -> None:
    p = policy().model_copy(update={"window": None})
    state = ModelState(model="fraud")
    whole = partial(0, rows(150), partition=None)
    assert observe(state, whole, p, partitions=3)
    count = whole.model_copy(
        update={
            "event_id": "count-1",
            "window": WindowSpec(kind="count", count=100),
            "partitions": [1],
        }
    )
    assert observe(state, count, p, partitions=3)
    assert {w.event_id for w in state.windows["v2"]} == {whole.event_id, "count-1"}
    assert state.pending == {}


def test_partials_without_aggregate_keep_counts_and_error_rate_only() -> None:
    p = policy()
    state = ModelState(model="fraud")
    parts = split(0, rows(150, errors=0.1))
    parts[1] = parts[1].model_copy(update={"aggregate": None})
    for e in parts:
        observe(state, e, p, partitions=3)
    (w,) = state.windows["v2"]
    assert w.n_predictions == 150 and w.n_errors == 15
    assert w.metrics["error_rate"] == 0.1 and "accuracy" not in w.metrics
    verdict = assess(p, evidence_for(state, "v2", at(0)))
    by_name = {r.name: r.status for r in verdict.results}
    assert by_name["accuracy"] == "error"  # never a guess, never healthy


def test_comparison_metrics_recomputed_on_the_merged_window() -> None:
    p = policy()
    state = ModelState(model="fraud")
    for i, acc in ((0, 0.9), (1, 0.8)):
        for pnum, e in enumerate(split(i, rows(150, acc=acc))):
            agg = aggregate(rows(150, acc=acc)[pnum::3])
            local = agg.metrics()["accuracy"]
            extra = {
                "baseline_accuracy": 0.9,
                "accuracy_drop_percent": (0.9 - local) / 0.9 * 100,
                "accuracy_degraded": 1.0,
            }
            observe(
                state, e.model_copy(update={"metrics": {**e.metrics, **extra}}), p, partitions=3
            )
    first, second = state.windows["v2"]
    assert "accuracy_trend" not in first.metrics
    assert math.isclose(second.metrics["accuracy_trend"], 0.8 - 0.9, abs_tol=0.01)
    assert second.metrics["baseline_accuracy"] == 0.9
    acc = second.metrics["accuracy"]
    assert math.isclose(second.metrics["accuracy_drop_percent"], (0.9 - acc) / 0.9 * 100)
    assert "accuracy_degraded" not in second.metrics  # a per-partition significance test


def test_state_with_pending_partials_round_trips_through_json() -> None:
    p = policy()
    state = ModelState(model="fraud")
    parts = split(0, rows(150, acc=0.8))
    observe(state, parts[0], p, partitions=3)
    restored = ModelState.model_validate_json(state.model_dump_json())
    assert restored == state
    for e in parts:  # a successor re-reads from its offsets: the first is a replay
        observe(restored, e, p, partitions=3)
        observe(state, e, p, partitions=3)
    assert restored == state and restored.windows["v2"][0].n_predictions == 150


# --- the invariant: any split, any order, duplicates == the unsplit window -------------

row_st = st.tuples(
    st.sampled_from(["0", "1"]),
    st.one_of(st.none(), st.sampled_from(["0", "1"])),
    st.sampled_from([3.0, 12.5, 40.0, 250.0, 900.0]),
    st.sampled_from([False, False, False, True]),  # failed (error_type)
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Row], int, list[MetricWindowClosed]]:
    window_rows = draw(st.lists(row_st, min_size=1, max_size=160))
    parts = draw(st.integers(min_value=1, max_value=4))
    where = draw(
        st.lists(st.integers(0, parts - 1), min_size=len(window_rows), max_size=len(window_rows))
    )
    events = [
        partial(0, [r for r, w in zip(window_rows, where, strict=True) if w == p], partition=p)
        for p in range(parts)
        if p in where
    ]
    replays = draw(st.lists(st.sampled_from(events), max_size=4))
    order = draw(st.permutations([*events, *replays]))
    return window_rows, parts, list(order)


@settings(max_examples=120, deadline=None)
@given(deliveries(), st.sampled_from([0.0, 5.0]))
def test_any_split_in_any_order_with_replays_equals_the_unsplit_window(
    delivery: tuple[list[Row], int, list[MetricWindowClosed]], grace: float
) -> None:
    window_rows, parts, events = delivery
    p = policy(grace)
    champion = partial(0, rows(150, acc=0.9), version="v1", partition=None)
    merged = ModelState(model="fraud")
    observe(merged, champion, p, partitions=parts)
    for e in events:
        observe(merged, e, p, partitions=parts)
    # a partition without traffic never reports: the timeout (or event time) merges
    later = T0 + timedelta(seconds=L + 1 + 30)
    merged, _ = decide(p, merged, RAMPING, later)
    whole = ModelState(model="fraud")
    observe(whole, champion, p, partitions=parts)
    observe(whole, partial(0, window_rows, partition=None), p, partitions=parts)
    whole, _ = decide(p, whole, RAMPING, later)

    (got,), (want,) = merged.windows["v2"], whole.windows["v2"]
    same_window(got, want)
    assert merged.pending == {}
    for now in (at(0), at(1)):
        a = assess(p, evidence_for(merged, "v2", now))
        b = assess(p, evidence_for(whole, "v2", now))
        assert a.status == b.status
        assert [(r.name, r.status, r.samples) for r in a.results] == [
            (r.name, r.status, r.samples) for r in b.results
        ]
        for x, y in zip(a.results, b.results, strict=True):
            assert (x.value is None) == (y.value is None)
            if x.value is not None and y.value is not None:
                assert math.isclose(x.value, y.value, rel_tol=1e-12, abs_tol=1e-12)
