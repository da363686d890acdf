"""Bookkeeping (dedup, order independence, merge), analysis decisions and the bandit."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelguard.contracts.experiments import (
    BanditConfig,
    ExposureLogged,
    OutcomeObserved,
    RampStep,
)
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.experiments import bookkeeping as bk
from modelguard.core.experiments.analysis import analysis_task
from modelguard.core.experiments.bandit import bandit_update, ramp_split, step_toward
from modelguard.core.simulation import Scenario, SimulationEngine
from tests.support.experiments import T0, analyze_binary, binary_partial
from tests.support.experiments import experiment_spec as spec
from tests.support.experiments import exposure as exp
from tests.support.experiments import outcome as out


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="split must name exactly the arms"):
        spec(split={"v1": 1.0})
    with pytest.raises(ValidationError, match="sum to 1"):
        spec(split={"v1": 0.5, "v2": 0.6})
    with pytest.raises(ValidationError, match="distinct"):
        spec(treatments=["v1"])
    with pytest.raises(ValidationError, match="needs a bandit config"):
        spec(allocation="bandit")
    with pytest.raises(ValidationError, match="strictly increasing"):
        spec(
            ramp=[
                RampStep(after_seconds=10, treatment_share=0.1),
                RampStep(after_seconds=5, treatment_share=0.5),
            ]
        )


def test_units_counted_once_and_conflicts_counted() -> None:
    state, notes = bk.run(
        [exp("u1", "v1"), exp("u1", "v1", 1), exp("u1", "v2", 2), exp("u2", "v2")]
    )
    part = state.experiments["e1"]
    assert part.units == {"v1": 1, "v2": 1}
    assert part.conflicts == 1
    assert notes == ["exposure_new", "exposure_duplicate", "exposure_conflict", "exposure_new"]


def test_outcomes_deduplicated_and_order_independent() -> None:
    events: list[ExposureLogged | OutcomeObserved] = [
        exp("u1", "v1"),
        out("u1", 1.0, "o1"),
        out("u1", 1.0, "o1"),  # duplicate delivery
        out("u2", 2.5, "o2", metric="revenue", pre=1.0),
        exp("u2", "v2"),
        out("u2", 1.5, "o3", metric="revenue"),
        out("u3", 4.0, "o4", experiment=None, metric="revenue"),
        exp("u3", "v2"),
    ]
    forward, notes = bk.run(events)
    assert notes.count("outcome_duplicate") == 1
    for seed in range(8):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        again, _ = bk.run(shuffled)
        assert again.experiments["e1"].units == forward.experiments["e1"].units
        for metric, arms in forward.experiments["e1"].metrics.items():
            for arm, sums in arms.items():
                assert again.experiments["e1"].metrics[metric][arm] == pytest.approx(sums)
    rev = forward.experiments["e1"].metrics["revenue"]["v2"]
    assert rev[bk.SY] == pytest.approx(8.0)  # u2: 2.5 + 1.5, u3: 4.0
    assert rev[bk.SYY] == pytest.approx(16.0 + 16.0)
    assert rev[bk.NX] == 1 and rev[bk.SXY] == pytest.approx(4.0)
    assert forward.experiments["e1"].metrics["conversion"]["v1"][bk.SMAX] == 1.0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 30), st.sampled_from(["v1", "v2"]), st.floats(0, 10), st.integers(0, 3)
        ),
        max_size=60,
    ),
    st.integers(1, 4),
)
@settings(max_examples=50, deadline=None)
def test_partials_of_unit_partitions_merge_to_the_whole(
    rows: list[tuple[int, str, float, int]], parts: int
) -> None:
    events: list[ExposureLogged | OutcomeObserved] = []
    for i, (u, arm, v, kind) in enumerate(rows):
        if kind == 0:
            events.append(exp(f"u{u}", arm, i))
        else:
            events.append(out(f"u{u}", v, f"o{i}", metric="revenue"))
    whole, _ = bk.run(events)
    partials = []
    for p in range(parts):
        st_p, _ = bk.run([e for e in events if int(e.unit_id[1:]) % parts == p])
        partials.append(st_p.experiments.get("e1", bk.ExperimentPartial()))
    merged = bk.merge_partials(partials)
    expected = whole.experiments.get("e1", bk.ExperimentPartial())
    assert merged.units == {a: n for a, n in expected.units.items()}
    for arm, sums in expected.metrics.get("revenue", {}).items():
        assert merged.metrics["revenue"][arm] == pytest.approx(sums, abs=1e-9)


def test_state_json_roundtrip() -> None:
    state, _ = bk.run([exp("u1", "v1"), out("u1", 1.0, "o1", pre=0.5)])
    again = bk.ExperimentPartial.from_dict(state.experiments["e1"].to_dict())
    assert again == state.experiments["e1"]
    rec = bk.UnitRecord.from_json(state.units["u1"].to_json())
    assert rec == state.units["u1"]


def test_clear_winner_is_promoted_and_aa_continues() -> None:
    s = spec()
    a, p = analyze_binary(s, (20_000, 20_000), (2000, 2400))
    assert a.recommendation == "promote" and a.winner == "v2"
    assert p["conversion:v2"] < 1e-6
    a2, _ = analyze_binary(s, (20_000, 20_000), (2000, 2010), analysis_id="a2")
    assert a2.recommendation == "continue" and a2.winner is None
    worse, _ = analyze_binary(s, (20_000, 20_000), (2400, 2000), analysis_id="a3")
    assert worse.recommendation == "rollback" and worse.losers == ["v2"]


def test_srm_freezes_conclusions() -> None:
    a, _ = analyze_binary(spec(), (20_000, 18_000), (2000, 2400))
    assert a.srm_detected and a.frozen and a.recommendation == "continue"
    assert a.srm_p_value is not None and a.srm_p_value < 1e-10


def test_min_sample_size_blocks_decisions() -> None:
    a, _ = analyze_binary(spec(min_sample_size=50_000), (20_000, 20_000), (2000, 2400))
    assert a.recommendation == "continue" and "minimum sample size" in a.reason


def test_running_p_never_increases_across_looks() -> None:
    _, p = analyze_binary(
        spec(), (20_000, 20_000), (2000, 2010), analysis_id="a", running_p={"conversion:v2": 0.01}
    )
    assert p["conversion:v2"] == 0.01


def test_bandit_respects_floor_step_and_interval() -> None:
    s = spec(
        allocation="bandit",
        bandit=BanditConfig(min_share=0.1, max_step=0.2, min_update_interval_seconds=60),
    )
    part = binary_partial((5000, 5000), (500, 800))
    rng = np.random.default_rng(0)
    upd = bandit_update(s, part, current={"v1": 0.5, "v2": 0.5}, last_update=None, now=T0, rng=rng)
    assert upd is not None
    assert upd.weights["v2"] == pytest.approx(0.7) and upd.target["v1"] == pytest.approx(0.1)
    assert (
        bandit_update(
            s, part, current=upd.weights, last_update=T0, now=T0 + timedelta(seconds=30), rng=rng
        )
        is None
    )
    later = bandit_update(
        s, part, current=upd.weights, last_update=T0, now=T0 + timedelta(seconds=61), rng=rng
    )
    assert later is not None and later.weights["v1"] == pytest.approx(0.1)
    assert sum(later.weights.values()) == pytest.approx(1.0)


def test_step_toward_and_ramp() -> None:
    w = step_toward({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, 0.25)
    assert w == pytest.approx({"a": 0.75, "b": 0.25})
    s = spec(
        ramp=[
            RampStep(after_seconds=0, treatment_share=0.1),
            RampStep(after_seconds=600, treatment_share=0.5),
        ]
    )
    assert ramp_split(s, T0 + timedelta(seconds=10)) == pytest.approx({"v1": 0.9, "v2": 0.1})
    assert ramp_split(s, T0 + timedelta(seconds=700)) == pytest.approx({"v1": 0.5, "v2": 0.5})


def test_unattributed_outcomes_count_for_every_experiment_of_the_unit() -> None:
    """ADR 0004 amendment: an outcome without an experiment id (a business conversion)
    counts for each experiment the unit is in, also one it joins later; an attributed
    outcome only for its own experiment."""
    state, notes = bk.run(
        [
            exp("u1", "v1", experiment="e1"),
            exp("u1", "v2", experiment="e2"),
            out("u1", 1.0, "c1", experiment=None),
            out("u2", 1.0, "c2", experiment=None),  # u2 not exposed yet: waits
            exp("u2", "v1", experiment="e2"),
            out("u3", 1.0, "c3", experiment="e1"),
            exp("u3", "v2", experiment="e1"),
            exp("u3", "v1", experiment="e2"),
        ]
    )
    assert notes[2:4] == ["outcome_applied", "outcome_pending"]
    conv = {e: state.experiments[e].metrics["conversion"] for e in ("e1", "e2")}
    assert conv["e1"]["v1"][bk.SMAX] == 1.0  # u1
    assert conv["e2"]["v2"][bk.SMAX] == 1.0  # u1
    assert conv["e2"]["v1"][bk.SMAX] == 1.0  # u2 (joined later); not u3's e1 outcome
    assert conv["e1"]["v2"][bk.SMAX] == 1.0  # u3's own outcome
    assert state.experiments["e2"].units == {"v1": 2, "v2": 1}


def test_analysis_task_is_stable_and_spreads_experiments() -> None:
    ids = [f"exp-{i}" for i in range(300)]
    tasks = [analysis_task(e, 3) for e in ids]
    assert tasks == [analysis_task(e, 3) for e in ids]
    counts = [tasks.count(t) for t in range(3)]
    assert min(counts) > 70, counts  # roughly a third each, none pinned to task 0
    assert {analysis_task(e, 1) for e in ids} == {0}
    with pytest.raises(ValueError, match="partitions"):
        analysis_task("e", 0)


def _sim(incidents: list[dict[str, object]]) -> SimulationEngine:
    scenario = Scenario.model_validate(
        {
            "name": "loss",
            "seed": 5,
            "rate_per_second": 200,
            "units": 1_000_000,
            "models": [
                {
                    "name": "m",
                    "experiment_id": "e",
                    "versions": {"v1": {}, "v2": {}},
                    "weights": {"v1": 0.5, "v2": 0.5},
                }
            ],
            "incidents": incidents,
        }
    )
    return SimulationEngine(scenario, start_time=T0)


def test_simulator_exposure_loss_drops_a_share_of_one_arm() -> None:
    plain = _sim([]).run_for(20)
    inactive = _sim(
        [{"kind": "exposure_loss", "model": "m", "version": "v2", "at": 100, "fraction": 0.5}]
    ).run_for(20)
    assert inactive == plain  # no extra draws while no loss is active
    engine = _sim(
        [{"kind": "exposure_loss", "model": "m", "version": "v2", "at": 0, "fraction": 0.3}]
    )
    events = engine.run_for(20)
    arms = [e.arm for e in events if isinstance(e, ExposureLogged)]
    units = {e.unit_id for e in events if isinstance(e, PredictionLogged)}
    assert engine.stats.exposures == len(arms) and engine.stats.exposures_lost > 0
    assert engine.stats.exposures + engine.stats.exposures_lost == len(units)
    share_v2 = arms.count("v2") / len(arms)
    expected = 0.5 * 0.7 / (0.5 * 0.7 + 0.5)  # 0.41
    assert abs(share_v2 - expected) < 0.03, share_v2
