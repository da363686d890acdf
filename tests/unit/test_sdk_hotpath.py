"""The SDK's request path: a long-lived encoder (names remembered, so its fast path runs)
accepts exactly what the contract accepts, including the timer's stage latencies, and its
bytes decode to the contract's event (oracle: the pydantic model); a common request never
builds a pydantic model; the stage histogram counts exactly what prometheus-client's
histogram counts (oracle), also from several threads."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelguard.contracts.predictions import PredictionLogged
from modelguard.contracts.telemetry import MODELGUARD_SDK_INFERENCE_DURATION_SECONDS
from modelguard.sdk import LatencyTimer, PredictionEncoder
from modelguard.sdk import encode as encode_module
from modelguard.sdk.latency import StageHistogram
from tests.support.sdk import PREDICTION_ARGS, T, agrees

WARM = PredictionEncoder()
WARM.encode(
    **{**PREDICTION_ARGS, "features": {"a": 1.0, "b": 2, "c": 0.5}, "task": "classification"}
)
WARM.encode(**{**PREDICTION_ARGS, "features": {"a": 1.0}, "task": "regression", "version": "v3"})


numbers = st.one_of(
    st.floats(-10, 10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.sampled_from([2**53, 2**53 + 1, -(2**53), 2.0**53, 9.1e15, -0.0]),
    st.booleans(),
)
stage_values = st.one_of(
    st.floats(0, 100), st.sampled_from([-1.0, math.nan, math.inf, 3.6e6, 3.7e6, 0, 5, True])
)


@settings(max_examples=500, deadline=None)
@given(
    features=st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), numbers, max_size=3),
        st.dictionaries(st.sampled_from(["a", "new", "x y", ""]), numbers, max_size=2),
        st.dictionaries(st.just("a"), st.one_of(st.none(), st.text(max_size=3)), max_size=1),
    ),
    prediction=st.one_of(
        st.integers(-3, 3),
        st.sampled_from([2**53, 2**53 + 1, math.nan, 0.5, "cat", "not cat", True, None]),
    ),
    probabilities=st.one_of(
        st.none(),
        st.just({"0": 0.25, "1": 0.75}),
        st.dictionaries(
            st.sampled_from(["0", "1"]),
            st.one_of(st.floats(-0.1, 1.1), st.just(math.nan), st.integers(0, 1)),
            max_size=2,
        ),
    ),
    stage_latency_ms=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["inference", "preprocessing", "training"]), stage_values, max_size=2
        ),
    ),
    unit_id=st.one_of(st.just("u1"), st.text(max_size=3), st.just("x" * 129)),
    prediction_id=st.one_of(st.just("p-1"), st.sampled_from(["", "a b", "\u200b", "p\n"])),
    latency_ms=st.one_of(st.floats(-1, 5), st.just(3.6e6), st.just(3.7e6), st.integers(0, 3)),
    event_time=st.one_of(
        st.just(T),
        st.just(T.astimezone(timezone(timedelta(hours=2)))),
        st.sampled_from(
            [
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
                datetime(2100, 1, 1, tzinfo=UTC),
                T.replace(tzinfo=None),
            ]
        ),
    ),
    task=st.sampled_from(["classification", "regression"]),
    version=st.sampled_from(["v2", "v3"]),
)
def test_hot_path_bytes_and_acceptance_agree_with_the_contract(**kwargs: Any) -> None:
    args = {**PREDICTION_ARGS, **kwargs}
    agrees(PredictionLogged, WARM.encode, args)


def test_a_common_request_builds_no_pydantic_model(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = PredictionEncoder()
    args = {**PREDICTION_ARGS, "features": {"a": 1.5, "b": 2}}
    enc.encode(**args)  # names checked once and remembered

    def contract(*a: object) -> None:
        raise AssertionError("the common request took the contract's path")

    monkeypatch.setattr(encode_module, "_validate", contract)
    timer = LatencyTimer()
    with timer, timer.stage("inference"):
        pass
    for i in range(3):
        key, _ = enc.encode(
            **{**args, "prediction_id": f"p{i}", "unit_id": f"u{i}"},
            stage_latency_ms={str(k): v for k, v in timer.stages_ms.items()},
        )
        assert key == f"p{i}".encode()


# -- the stage histogram ------------------------------------------------------------
BOUNDS = MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.buckets or ()


def bucket_lines(registry: CollectorRegistry) -> list[str]:
    return sorted(
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith(MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.name + "_")
        and "_created" not in line
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["inference", "preprocessing"]),
            st.one_of(st.floats(0, 20), st.sampled_from([*BOUNDS, 0.0, 1e-9])),
        ),
        max_size=30,
    )
)
def test_stage_histogram_exports_what_prometheus_client_would(
    observations: list[tuple[Any, float]],
) -> None:
    ours, oracle = CollectorRegistry(), CollectorRegistry()
    observe = StageHistogram(ours).observer("fraud", "v2")
    family = MODELGUARD_SDK_INFERENCE_DURATION_SECONDS
    reference = Histogram(family.name, family.help, family.labels, buckets=BOUNDS, registry=oracle)
    for stage in ("preprocessing", "inference", "postprocessing"):
        reference.labels("fraud", "v2", stage)
    for stage, seconds in observations:
        observe(stage, seconds)
        reference.labels("fraud", "v2", stage).observe(seconds)
    assert bucket_lines(ours) == bucket_lines(oracle)


def test_stage_histogram_counts_every_observation_from_many_threads() -> None:
    registry = CollectorRegistry()
    observe = StageHistogram(registry).observer("fraud", "v2")
    n, threads = 20_000, 4

    def work() -> None:
        for _ in range(n):
            observe("inference", 0.02)

    started = [threading.Thread(target=work) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    count = f'stage="inference"}} {float(n * threads)}'
    assert any(line.endswith(count) and "_count" in line for line in bucket_lines(registry))


WIDE = [f"f{i}" for i in range(40)]


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(numbers, min_size=17, max_size=40),
    odd=st.sampled_from([(), (None,), ("x",), (math.nan,), (True,), (2**53 + 1,)]),
)
def test_wide_feature_rows_agree_with_the_contract(values: list[Any], odd: tuple[Any, ...]) -> None:
    """More than 16 features take the builtin reductions instead of the loop."""
    features = dict(zip(WIDE, values, strict=False))
    if odd:
        features["f0"] = odd[0]
    agrees(PredictionLogged, WARM.encode, {**PREDICTION_ARGS, "features": features})
