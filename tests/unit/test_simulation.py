"""The pure simulation engine: determinism, rates, and that each incident changes what
it should (checked with scipy tests against the scenario's parameters)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from scipy import stats

from modelguard.contracts.codec import encode_event
from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.simulation import Scenario, ScenarioError, SimulationEngine, parse_scenario
from tests.support.paths import ROOT

START = datetime(2026, 1, 1, tzinfo=UTC)
ALPHA = 0.001


def scenario(**overrides: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": "t",
        "seed": 3,
        "rate_per_second": 200,
        "units": 20_000,
        "models": [
            {
                "name": "fraud",
                "experiment_id": "exp-1",
                "features": {
                    "amount": {"kind": "normal", "mean": 50, "std": 10},
                    "country": {"kind": "categorical", "values": {"US": 0.5, "DE": 0.5}},
                },
                "versions": {
                    "v1": {"accuracy": 0.9, "latency_ms": {"kind": "constant", "value": 10}},
                    "v2": {"accuracy": 0.8, "latency_ms": {"kind": "constant", "value": 10}},
                },
                "weights": {"v1": 0.7, "v2": 0.3},
                "labels": {"fraction": 0.5, "delay_seconds": {"kind": "exponential", "mean": 4}},
            }
        ],
        "incidents": [],
    }
    base.update(overrides)
    return Scenario.model_validate(base)


def preds(events: list[Any]) -> list[PredictionLogged]:
    return [e for e in events if isinstance(e, PredictionLogged)]


def accuracy_by_version(events: list[Any]) -> dict[str, tuple[int, int]]:
    p = {e.prediction_id: e for e in preds(events)}
    out: dict[str, list[int]] = {}
    for e in events:
        if isinstance(e, LabelObserved) and e.prediction_id in p:
            pred = p[e.prediction_id]
            hits = out.setdefault(pred.version, [0, 0])
            hits[0] += int(pred.prediction == e.label)
            hits[1] += 1
    return {v: (h[0], h[1]) for v, h in out.items()}


def test_same_seed_same_events_other_seed_different() -> None:
    a = [encode_event(e) for e in SimulationEngine(scenario(), start_time=START).run_for(10)]
    b = [encode_event(e) for e in SimulationEngine(scenario(), start_time=START).run_for(10)]
    c = [encode_event(e) for e in SimulationEngine(scenario(seed=4), start_time=START).run_for(10)]
    assert a == b
    assert a != c


def test_rate_ticks_and_time_order() -> None:
    engine = SimulationEngine(scenario(rate_per_second=12.5, tick_seconds=0.5), start_time=START)
    events = engine.run_for(8)
    assert len(preds(events)) == 100  # 12.5/s x 8 s, fractional parts carried
    assert engine.elapsed == 8.0
    times = [e.event_time for e in events]
    assert times == sorted(times)
    assert all(START <= t < engine.now for t in times)


def test_accuracy_and_label_delays_follow_the_scenario() -> None:
    engine = SimulationEngine(scenario(), start_time=START)
    events = engine.run_for(60) + engine.drain()
    for version, expected in (("v1", 0.9), ("v2", 0.8)):
        hits, n = accuracy_by_version(events)[version]
        assert n > 500
        assert stats.binomtest(hits, n, expected).pvalue > ALPHA
    p = {e.prediction_id: e for e in preds(events)}
    labels = [e for e in events if isinstance(e, LabelObserved)]
    assert stats.binomtest(len(labels), len(p), 0.5).pvalue > ALPHA
    delays = [(e.event_time - p[e.prediction_id].event_time).total_seconds() for e in labels]
    assert stats.kstest(delays, stats.expon(scale=4).cdf).pvalue > ALPHA


def test_assignment_proportions_over_units() -> None:
    events = SimulationEngine(scenario(), start_time=START).run_for(60)
    version_of_unit = {e.unit_id: e.version for e in preds(events)}
    # sticky: a unit never sees two versions
    assert all(version_of_unit[e.unit_id] == e.version for e in preds(events))
    c = Counter(version_of_unit.values())
    n = len(version_of_unit)
    assert stats.chisquare([c["v1"], c["v2"]], [0.7 * n, 0.3 * n]).pvalue > ALPHA


def test_bad_challenger_accuracy_drop_from_its_time() -> None:
    incident = {
        "kind": "accuracy_drop",
        "model": "fraud",
        "version": "v2",
        "at": 30,
        "accuracy": 0.5,
    }
    engine = SimulationEngine(scenario(incidents=[incident]), start_time=START)
    before = engine.run_for(30) + engine.drain()
    after = engine.run_for(30) + engine.drain()
    h, n = accuracy_by_version(before)["v2"]
    assert stats.binomtest(h, n, 0.8).pvalue > ALPHA
    h, n = accuracy_by_version(after)["v2"]
    assert stats.binomtest(h, n, 0.5).pvalue > ALPHA
    h, n = accuracy_by_version(after)["v1"]  # the champion is unaffected
    assert stats.binomtest(h, n, 0.9).pvalue > ALPHA


def test_data_drift_shifts_only_its_feature_from_its_time() -> None:
    incident = {"kind": "data_drift", "model": "fraud", "feature": "amount", "at": 20, "shift": 5.0}
    engine = SimulationEngine(scenario(incidents=[incident]), start_time=START)
    a = [e.features["amount"] for e in preds(engine.run_for(10))]
    b = [e.features["amount"] for e in preds(engine.run_for(10))]
    c = [e.features["amount"] for e in preds(engine.run_for(10))]
    assert stats.ks_2samp(a, b).pvalue > ALPHA  # no drift before 20 s
    assert stats.ks_2samp(b, c).pvalue < ALPHA  # drift after
    assert abs(statistics.fmean(c) - statistics.fmean(b) - 5.0) < 1.0
    assert stats.kstest(a, stats.norm(50, 10).cdf).pvalue > ALPHA


def test_categorical_drift_error_burst_and_latency_spike() -> None:
    incidents = [
        {
            "kind": "data_drift",
            "model": "fraud",
            "feature": "country",
            "at": 10,
            "values": {"US": 0.1, "DE": 0.9},
        },
        {
            "kind": "error_burst",
            "model": "fraud",
            "version": "v1",
            "at": 10,
            "until": 20,
            "error_rate": 0.4,
            "error_type": "timeout",
        },
        {"kind": "latency_spike", "model": "fraud", "at": 10, "factor": 3},
    ]
    engine = SimulationEngine(scenario(incidents=incidents), start_time=START)
    before = preds(engine.run_for(10))
    during = preds(engine.run_for(10))
    after = preds(engine.run_for(10))
    us = sum(e.features["country"] == "US" for e in during)
    assert stats.binomtest(us, len(during), 0.1).pvalue > ALPHA
    assert not any(e.error_type for e in before + after)
    v1 = [e for e in during if e.version == "v1"]
    errors = [e for e in v1 if e.error_type == "timeout"]
    assert stats.binomtest(len(errors), len(v1), 0.4).pvalue > ALPHA
    assert all(e.prediction is None for e in errors)
    assert not any(e.error_type for e in during if e.version == "v2")
    assert {e.latency_ms for e in before} == {10.0}
    assert {e.latency_ms for e in during + after} == {30.0}


def test_exposures_once_per_unit_and_arm_and_outcomes_with_labels() -> None:
    engine = SimulationEngine(scenario(), start_time=START)
    events = engine.run_for(30) + engine.drain()
    exposures = [e for e in events if isinstance(e, ExposureLogged)]
    keys = [(e.unit_id, e.arm) for e in exposures]
    assert len(keys) == len(set(keys)) == len({e.unit_id for e in preds(events)})
    outcomes = [e for e in events if isinstance(e, OutcomeObserved)]
    labels = [e for e in events if isinstance(e, LabelObserved)]
    assert len(outcomes) == len(labels) and {o.value for o in outcomes} <= {0.0, 1.0}
    assert engine.stats.exposures == len(exposures)


def test_custom_assign_is_used_and_unknown_versions_are_refused() -> None:
    engine = SimulationEngine(scenario(), start_time=START)
    events = engine.run_for(2, assign=lambda model, unit, t: "v2")
    assert {e.version for e in preds(events)} == {"v2"}
    with pytest.raises(ValueError, match="routing chose version 'v9' of 'fraud'"):
        engine.run_for(1, assign=lambda model, unit, t: "v9")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "incidents": [
                    {
                        "kind": "accuracy_drop",
                        "model": "nope",
                        "version": "v1",
                        "at": 1,
                        "accuracy": 0.1,
                    }
                ]
            },
            "unknown model 'nope'",
        ),
        (
            {
                "incidents": [
                    {
                        "kind": "accuracy_drop",
                        "model": "fraud",
                        "version": "v9",
                        "at": 1,
                        "accuracy": 0.1,
                    }
                ]
            },
            "has no version 'v9'",
        ),
        (
            {
                "incidents": [
                    {
                        "kind": "data_drift",
                        "model": "fraud",
                        "feature": "country",
                        "at": 1,
                        "shift": 2,
                    }
                ]
            },
            "shift/scale need a numeric feature",
        ),
        ({"incidents": [{"kind": "meteor", "model": "fraud", "at": 1}]}, "incidents.0"),
        ({"rate_per_second": 0}, "rate_per_second"),
    ],
)
def test_invalid_scenarios_name_the_problem(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scenario(**change)


def test_weights_must_be_valid_and_known() -> None:
    bad = scenario().model_dump()
    bad["models"][0]["weights"] = {"v1": 0.5, "v3": 0.5}
    with pytest.raises(ValueError, match="unknown version 'v3'"):
        Scenario.model_validate(bad)


def test_yaml_errors_name_the_source_and_field() -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml: not valid YAML"):
        parse_scenario("name: [", "s.yaml")
    with pytest.raises(ScenarioError, match=r"s\.yaml: models: Field required"):
        parse_scenario("name: x\n", "s.yaml")


def test_example_scenario_loads_and_runs() -> None:
    path = ROOT / "deploy" / "scenarios" / "fraud-canary.yaml"
    sc = parse_scenario(path.read_text(), str(path))
    engine = SimulationEngine(sc, start_time=START)
    events = engine.run_for(5)
    assert {e.model for e in preds(events)} == {"fraud", "churn"}
    with pytest.raises(ValueError, match="start_time is required"):
        SimulationEngine(sc)
