"""RoutingClient.version_for's request path: remembered assignments are exact (the
oracle is the compiled table itself), follow every new table, stay bounded, and never
bypass stale counting or exposure events. No Redis: tables are installed directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.routing import RoutingTable
from modelguard.core.routing.assignment import CompiledTable
from modelguard.routing import RoutingClient
from modelguard.routing import client as client_module

T = datetime(2026, 1, 1, tzinfo=UTC)


def table(revision: int, weights: dict[str, float], **extra: Any) -> str:
    slots = {v: i for i, v in enumerate(sorted(weights))}
    return RoutingTable(
        model="m", revision=revision, weights=weights, slots=slots, updated_at=T, **extra
    ).model_dump_json()


#: The versions registered for model m (a router refuses tables naming others).
REGISTERED = {b"v1", b"v2"}


def make_client(**kwargs: Any) -> RoutingClient:
    rc = RoutingClient(None, RedisKeys(prefix="t"), clock=lambda: T, **kwargs)  # type: ignore[arg-type]
    rc.connected = True  # as after a successful subscription
    return rc


def test_remembered_assignments_equal_the_compiled_table() -> None:
    rc = make_client()
    rc._apply("m", table(1, {"v1": 0.7, "v2": 0.3}), REGISTERED)
    oracle = CompiledTable({"v1": 0.7, "v2": 0.3}, slots={"v1": 0, "v2": 1}, salt="m")
    units = [f"u{i}" for i in range(2000)]
    first = [rc.version_for("m", u) for u in units]
    again = [rc.version_for("m", u) for u in units]
    assert first == again == [oracle.choose(u) for u in units]
    assert len(rc._entries["m"].assigned) == len(units)


def test_a_new_table_is_used_at_once() -> None:
    rc = make_client()
    rc._apply("m", table(1, {"v1": 1.0, "v2": 0.0}), REGISTERED)
    units = [f"u{i}" for i in range(200)]
    assert {rc.version_for("m", u) for u in units} == {"v1"}
    rc._apply("m", table(2, {"v1": 0.0, "v2": 1.0}), REGISTERED)
    assert {rc.version_for("m", u) for u in units} == {"v2"}


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "ASSIGNMENT_CACHE_SIZE", 50)
    rc = make_client()
    rc._apply("m", table(1, {"v1": 0.5, "v2": 0.5}), REGISTERED)
    for i in range(500):
        rc.version_for("m", f"u{i}")
        assert len(rc._entries["m"].assigned) <= 50


def test_stale_assignments_are_counted_for_remembered_units() -> None:
    rc = make_client()
    rc._apply("m", table(1, {"v1": 0.5, "v2": 0.5}), REGISTERED)
    rc.version_for("m", "u1")
    rc.connected = False
    rc.version_for("m", "u1")
    rc.version_for("m", "u1")
    assert rc.stale_assignments == 2


def test_every_assignment_of_an_experiment_is_exposed() -> None:
    seen: list[ExposureLogged] = []
    rc = make_client(exposures=seen.append)
    rc._apply("m", table(1, {"v1": 0.5, "v2": 0.5}, experiment_id="exp-1"), REGISTERED)
    for _ in range(3):
        rc.version_for("m", "u1")
    assert len(seen) == 3 and {e.unit_id for e in seen} == {"u1"}


@pytest.mark.parametrize("bad", ["", None, 7, b"u1"])
def test_invalid_unit_ids_are_refused(bad: object) -> None:
    rc = make_client()
    rc._apply("m", table(1, {"v1": 0.5, "v2": 0.5}), REGISTERED)
    with pytest.raises(ValueError, match="unit_id must be a non-empty str"):
        rc.version_for("m", bad)  # type: ignore[arg-type]


def test_a_table_written_anew_at_a_lower_revision_replaces_the_lost_one() -> None:
    """Redis lost the table (restored from an older snapshot, or deleted) and the
    controller wrote a rollback at revision 1. Before: the router kept serving the lost
    revision 2 (50/50) until restarted (``/tmp/review/repro_routing_revision_reset.py``
    showed it against a real Redis)."""
    rc = make_client()
    rc._apply("m", table(2, {"v1": 0.5, "v2": 0.5}), REGISTERED)
    later = T.replace(hour=1)
    rollback = RoutingTable(
        model="m",
        revision=1,
        weights={"v1": 1.0, "v2": 0.0},
        slots={"v1": 0, "v2": 1},
        updated_at=later,
    ).model_dump_json()
    rc._apply("m", rollback, REGISTERED)
    assert rc.revision("m") == 1
    assert {rc.version_for("m", f"u{i}") for i in range(200)} == {"v1"}


def test_a_stale_read_of_an_older_table_is_still_dropped() -> None:
    rc = make_client()
    rc._apply("m", table(2, {"v1": 0.0, "v2": 1.0}), REGISTERED)
    rc._apply("m", table(1, {"v1": 1.0, "v2": 0.0}), REGISTERED)  # same or older time
    rc._apply("m", table(2, {"v1": 1.0, "v2": 0.0}), REGISTERED)  # a re-read, same time
    assert rc.revision("m") == 2
    assert rc.table("m").weights == {"v1": 0.0, "v2": 1.0}  # type: ignore[union-attr]
