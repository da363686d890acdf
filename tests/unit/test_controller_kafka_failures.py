"""The controller loop outlives a Kafka outage (README: "After a broker outage every
service resumes by itself").

Before: a decision publish the broker did not acknowledge, an outbox check that could
not read the decisions topic (both ``DependencyError``) or a failing client call during
a take-over (``KafkaException``) escaped ``ControllerService.run`` and ended the
process. Now the replica steps down like after a Redis outage, reports
``modelguard_dependency_up{dependency="kafka"} 0``, waits and takes over again: the
successor path of ADR 0005 (the outbox saved before the publish is finished then).

No servers: the clients point at closed ports and never connect; the lease and the
take-over / iteration steps are replaced by fakes that fail as Kafka would.
"""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.errors import DependencyError
from modelguard_services.controller import ControllerService

SETTINGS = CommonSettings(
    kafka_bootstrap_servers="127.0.0.1:1",
    redis_url="redis://127.0.0.1:1/0",
    topic_prefix="unit-ctl",
    redis_prefix="unit-ctl",
)


class _NoWriter:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the routing writer is not used here ({name})")


@pytest.mark.parametrize(
    "failure",
    [
        DependencyError("decision publish failed: timeout"),
        DependencyError("could not read the tail of unit-ctl.routing-decisions.v1"),
        KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down")),
    ],
    ids=["publish", "outbox-check", "client"],
)
def test_a_kafka_failure_steps_down_and_takes_over_again(failure: Exception) -> None:
    registry = CollectorRegistry()
    svc = ControllerService(SETTINGS, registry, {}, _NoWriter(), replica="r1")  # type: ignore[arg-type]
    stop = threading.Event()
    gauge: list[float | None] = []
    calls = {"take_over": 0, "iteration": 0}

    def up() -> float | None:
        return registry.get_sample_value("modelguard_dependency_up", {"dependency": "kafka"})

    def take_over() -> None:
        calls["take_over"] += 1
        svc.is_leader = True

    def iteration(last_seen: float, next_tick: float) -> tuple[float, float]:
        calls["iteration"] += 1
        if calls["iteration"] <= 2:  # the outage: the first two iterations fail
            raise failure
        gauge.append(up())  # while failing, the gauge said 0 (checked below)
        stop.set()
        return last_seen, next_tick

    svc._store.hold_lease = lambda: True  # type: ignore[method-assign]
    svc._take_over = take_over  # type: ignore[method-assign]
    svc._iteration = iteration  # type: ignore[method-assign]
    seen_down: list[float | None] = []
    real_mark_down = svc.kafka_guard.mark_down

    def mark_down(error: BaseException) -> None:
        real_mark_down(error)
        seen_down.append(up())

    svc.kafka_guard.mark_down = mark_down  # type: ignore[method-assign]

    assert svc.run(stop) == 0  # before: the failure propagated out of run()
    assert calls == {"take_over": 3, "iteration": 3}  # stepped down twice, took over again
    assert seen_down == [0.0, 0.0]
    assert gauge == [0.0]  # the third iteration is the first one to succeed
    assert up() == 1.0 and svc.kafka_guard.outages == 1


def test_a_kafka_failure_while_stopping_ends_the_loop() -> None:
    svc = ControllerService(SETTINGS, CollectorRegistry(), {}, _NoWriter(), replica="r2")  # type: ignore[arg-type]
    stop = threading.Event()

    def iteration(last_seen: float, next_tick: float) -> tuple[float, float]:
        stop.set()
        raise DependencyError("decision publish failed: timeout")

    svc._store.hold_lease = lambda: True  # type: ignore[method-assign]
    svc._take_over = lambda: setattr(svc, "is_leader", True)  # type: ignore[method-assign]
    svc._iteration = iteration  # type: ignore[method-assign]
    assert svc.run(stop) == 0
