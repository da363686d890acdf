"""Pure routing: weight validation, slots, and the statistics of sticky assignment.

Proportions are checked with scipy's chi-square test; independence of salts with a
chi-square contingency test; ramps against the closed-form share of units that must move.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats

from modelguard.contracts.routing import RoutingTable
from modelguard.core.routing import (
    MAX_SLOTS,
    CompiledTable,
    WeightsError,
    assign_slots,
    normalize_weights,
    unit_uniforms,
    validate_weights,
)

UNITS = [f"user-{i}" for i in range(30_000)]
ALPHA = 0.001


def table(weights: dict[str, float], salt: str = "fraud") -> CompiledTable:
    return CompiledTable(weights, slots=assign_slots({}, weights), salt=salt)


def counts(t: CompiledTable, versions: list[str], units: list[str] = UNITS) -> list[int]:
    c = Counter(t.choose(u) for u in units)
    assert set(c) <= set(versions)
    return [c[v] for v in versions]


# -- weights -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one version"),
        ({"v1": 1.2, "v2": -0.2}, r"weights\['v2'\]: -0.2 is negative"),
        ({"v1": math.nan}, r"weights\['v1'\]: nan is not a finite number"),
        ({"v1": math.inf}, "not a finite number"),
        ({"v1": 0.5, "v2": 0.4}, "sum to 0.9, expected 1"),
        ({"v 1": 1.0}, "'v 1' is not a valid version name"),
        ({"v1": True}, r"weights\['v1'\]: expected a number"),
        ({"v1": "1"}, "expected a number"),
    ],
)
def test_invalid_weights_are_named(weights: dict[str, float], message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        validate_weights(weights)


def test_unknown_version_rejected_and_listed() -> None:
    with pytest.raises(WeightsError, match=r"unknown version 'v3' \(known: v1, v2\)"):
        validate_weights({"v1": 0.5, "v3": 0.5}, known_versions={"v1", "v2"})
    assert validate_weights({"v1": 0.5, "v2": 0.5}, known_versions={"v1", "v2"}) == {
        "v1": 0.5,
        "v2": 0.5,
    }


def test_weights_sum_within_tolerance_and_normalize() -> None:
    validate_weights({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert normalize_weights({"a": 2.0, "b": 6.0}) == {"a": 0.25, "b": 0.75}
    with pytest.raises(WeightsError, match="sum to 0"):
        normalize_weights({"a": 0.0})


# -- slots ---------------------------------------------------------------------------
def test_slots_are_kept_and_new_versions_take_the_lowest_free() -> None:
    assert assign_slots({}, ["a", "b", "c"]) == {"a": 0, "b": 1, "c": 2}
    assert assign_slots({"a": 0, "b": 1, "c": 2}, ["c", "d"]) == {"c": 2, "d": 0}
    with pytest.raises(ValueError, match="at most 16"):
        assign_slots({}, [f"v{i}" for i in range(MAX_SLOTS + 1)])


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), st.integers(0, 15), max_size=16
    ),
    st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), max_size=16, unique=True),
)
def test_slot_invariants(previous: dict[str, int], versions: list[str]) -> None:
    # previous slots of a real table are distinct: keep the first holder of each slot
    seen: set[int] = set()
    prev = {v: s for v, s in previous.items() if not (s in seen or seen.add(s))}
    slots = assign_slots(prev, versions)
    assert list(slots) == versions
    assert len(set(slots.values())) == len(slots)
    assert all(0 <= s < MAX_SLOTS for s in slots.values())
    assert all(slots[v] == prev[v] for v in versions if v in prev)


# -- assignment ------------------------------------------------------------------------
def test_choose_matches_a_direct_rendezvous_oracle() -> None:
    weights = {"a": 0.2, "b": 0.5, "c": 0.3}
    slots = {"a": 3, "b": 0, "c": 9}
    t = CompiledTable(weights, slots=slots, salt="exp-1")
    for unit in UNITS[:2000]:
        u = unit_uniforms(unit, "exp-1")
        expected = min(weights, key=lambda v: -math.log(u[slots[v]]) / weights[v])
        assert t.choose(unit) == expected


@pytest.mark.parametrize(
    "weights",
    [
        {"v1": 0.5, "v2": 0.5},
        {"v1": 0.9, "v2": 0.1},
        {"v1": 0.6, "v2": 0.3, "v3": 0.1},
        {"a": 0.25, "b": 0.25, "c": 0.2, "d": 0.15, "e": 0.15},
    ],
)
def test_proportions_follow_weights(weights: dict[str, float]) -> None:
    versions = list(weights)
    observed = counts(table(weights), versions)
    expected = [weights[v] * len(UNITS) for v in versions]
    assert stats.chisquare(observed, expected).pvalue > ALPHA


def test_proportions_are_not_trivially_accepted() -> None:
    # the same check rejects a table whose real split is 0.8/0.2 against claimed 0.9/0.1
    observed = counts(table({"v1": 0.8, "v2": 0.2}), ["v1", "v2"])
    assert stats.chisquare(observed, [0.9 * len(UNITS), 0.1 * len(UNITS)]).pvalue < ALPHA


def test_zero_weight_gets_no_units_and_single_version_gets_all() -> None:
    assert counts(table({"v1": 1.0, "v2": 0.0}), ["v1", "v2"], UNITS[:5000]) == [5000, 0]
    assert table({"only": 1.0}).choose("x") == "only"


def test_sticky_across_instances_and_revisions() -> None:
    weights = {"v1": 0.7, "v2": 0.3}
    a, b = table(weights), table(dict(weights))
    assert [a.choose(u) for u in UNITS[:5000]] == [b.choose(u) for u in UNITS[:5000]]


def test_salts_assign_independently() -> None:
    weights = {"v1": 0.5, "v2": 0.5}
    a, b = table(weights, salt="exp-a"), table(weights, salt="exp-b")
    pairs = Counter((a.choose(u), b.choose(u)) for u in UNITS)
    matrix = [
        [pairs[("v1", "v1")], pairs[("v1", "v2")]],
        [pairs[("v2", "v1")], pairs[("v2", "v2")]],
    ]
    assert stats.chi2_contingency(matrix).pvalue > ALPHA
    # and the same salt is perfectly dependent (the test can see dependence)
    same = Counter((a.choose(u), table(weights, salt="exp-a").choose(u)) for u in UNITS[:3000])
    assert same[("v1", "v2")] == same[("v2", "v1")] == 0


def _ramp(before: dict[str, float], after: dict[str, float], grown: str) -> None:
    slots = assign_slots({}, before)
    old = CompiledTable(before, slots=slots, salt="m")
    new = CompiledTable(after, slots=slots, salt="m")
    moved = [(old.choose(u), new.choose(u)) for u in UNITS]
    movers = [(a, b) for a, b in moved if a != b]
    assert all(b == grown for _, b in movers), "a unit moved to a version that did not grow"
    # exactly the needed share moves: after[grown] - before[grown] (binomial test)
    need = after[grown] - before[grown]
    assert stats.binomtest(len(movers), len(UNITS), need).pvalue > ALPHA
    # and rolling back restores every unit
    assert [old.choose(u) for u in UNITS] == [a for a, _ in moved]


def test_ramp_moves_only_needed_units_two_versions() -> None:
    _ramp({"v1": 0.9, "v2": 0.1}, {"v1": 0.8, "v2": 0.2}, "v2")


def test_ramp_moves_only_needed_units_three_versions() -> None:
    before = {"v1": 0.6, "v2": 0.3, "v3": 0.1}
    scale = 0.8 / 0.9
    after = {"v1": 0.6 * scale, "v2": 0.3 * scale, "v3": 0.2}
    _ramp(before, after, "v3")


def test_rollback_to_zero_sends_challenger_units_back_to_their_version() -> None:
    slots = {"v1": 0, "v2": 1, "v3": 2}
    canary = CompiledTable({"v1": 0.6, "v2": 0.3, "v3": 0.1}, slots=slots, salt="m")
    rolled = CompiledTable({"v1": 0.6 / 0.9, "v2": 0.3 / 0.9, "v3": 0.0}, slots=slots, salt="m")
    for u in UNITS[:5000]:
        before, after = canary.choose(u), rolled.choose(u)
        assert after == before or before == "v3"


@settings(max_examples=50)
@given(
    st.lists(st.floats(0.0, 10.0), min_size=1, max_size=16).filter(lambda w: sum(w) > 0),
    st.text(min_size=1, max_size=40),
)
def test_choose_returns_a_version_with_positive_weight(raw: list[float], unit: str) -> None:
    weights = normalize_weights({f"v{i}": w for i, w in enumerate(raw)})
    chosen = table(weights).choose(unit)
    assert weights[chosen] > 0


def test_compiled_table_rejects_inconsistent_slots() -> None:
    with pytest.raises(ValueError, match="slots: must name exactly"):
        CompiledTable({"a": 1.0}, slots={"b": 0}, salt="s")
    with pytest.raises(ValueError, match="distinct"):
        CompiledTable({"a": 0.5, "b": 0.5}, slots={"a": 0, "b": 0}, salt="s")
    with pytest.raises(ValueError, match="no version has a positive weight"):
        CompiledTable({"a": 0.0}, slots={"a": 0}, salt="s")


# -- contract --------------------------------------------------------------------------
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_routing_table_contract_checks_sum_and_slots() -> None:
    ok = RoutingTable(model="m", revision=1, weights={"a": 1.0}, slots={"a": 0}, updated_at=NOW)
    assert ok.salt == "m"
    assert RoutingTable.model_validate_json(ok.model_dump_json()) == ok
    with pytest.raises(ValidationError, match=r"weights sum to 0\.5"):
        RoutingTable(model="m", revision=1, weights={"a": 0.5}, slots={"a": 0}, updated_at=NOW)
    with pytest.raises(ValidationError, match="slots must name exactly"):
        RoutingTable(model="m", revision=1, weights={"a": 1.0}, slots={}, updated_at=NOW)
    with pytest.raises(ValidationError, match="slots must be distinct"):
        RoutingTable(
            model="m",
            revision=1,
            weights={"a": 0.5, "b": 0.5},
            slots={"a": 1, "b": 1},
            updated_at=NOW,
        )
    with_exp = ok.model_copy(update={"experiment_id": "exp-7"})
    assert with_exp.salt == "exp-7"
