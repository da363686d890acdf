"""The dependency guard: retries transient failures, reports the outage, stops on request."""

from __future__ import annotations

import threading

import pytest
import redis
from prometheus_client import CollectorRegistry

from modelguard.adapters.dependency import (
    DEPENDENCY_UP,
    DependencyGuard,
    DependencyUnavailableError,
    dependency_gauge,
)


def _up(registry: CollectorRegistry, dependency: str) -> float | None:
    return registry.get_sample_value(DEPENDENCY_UP, {"dependency": dependency})


def test_transient_failures_are_retried_and_reported_then_cleared() -> None:
    registry = CollectorRegistry()
    seen: list[float | None] = []
    guard = DependencyGuard(
        "redis", registry, sleep=lambda s: seen.append(_up(registry, "redis")), seed=1
    )
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise redis.ConnectionError("refused")
        return "ok"

    assert _up(registry, "redis") == 1.0
    assert guard.call(flaky) == "ok"
    assert len(calls) == 4
    assert seen == [0.0, 0.0, 0.0]  # down while waiting
    assert _up(registry, "redis") == 1.0 and guard.up and guard.outages == 1


def test_other_errors_propagate_at_once() -> None:
    guard = DependencyGuard("redis", sleep=lambda s: None)

    def wrong() -> None:
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        guard.call(wrong)
    assert guard.up


def test_stop_ends_the_wait_with_a_typed_error() -> None:
    stop = threading.Event()
    guard = DependencyGuard("redis", stop=stop, sleep=lambda s: stop.set())

    def down() -> None:
        raise redis.TimeoutError("timeout")

    with pytest.raises(DependencyUnavailableError, match="redis unavailable"):
        guard.call(down)


def test_backoff_grows_and_is_capped() -> None:
    delays: list[float] = []
    guard = DependencyGuard("redis", sleep=delays.append, seed=3)
    n = 0

    def down_for_a_while() -> None:
        nonlocal n
        n += 1
        if n < 40:
            raise redis.ConnectionError("x")

    guard.call(down_for_a_while)
    assert max(delays) <= 5.0
    assert max(delays[:3]) <= 0.4  # early attempts are quick
    assert max(delays[10:]) > 1.0  # later ones back off


def test_one_gauge_per_registry_for_all_dependencies() -> None:
    registry = CollectorRegistry()
    DependencyGuard("redis", registry)
    DependencyGuard("kafka", registry)
    assert dependency_gauge(registry) is dependency_gauge(registry)
    assert _up(registry, "redis") == 1.0 and _up(registry, "kafka") == 1.0
