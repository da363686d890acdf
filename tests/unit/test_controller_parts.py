"""The controller's parts without servers: the leader's assigned consumer (offset keys,
a missing topic), and the decision applier's typed failures (no base revision, a publish
the broker did not acknowledge). The loop itself runs on real servers in
tests/integration/test_controller.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.partitioned import offset_key
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.routing import RoutingTable
from modelguard.errors import ConflictError, DependencyError, InvalidInputError
from modelguard_services.controller import LostLeaseError, consumer
from modelguard_services.controller.consumer import AssignedConsumer, normalise_offsets
from modelguard_services.controller.metrics import ControllerMetrics
from modelguard_services.controller.outbox import DecisionApplier, subject
from tests.support.kafka import FakeClusterMetadata, fake_metadata


@dataclass
class FakeConsumer:
    topics: dict[str, int]
    assigned: list[TopicPartition] = field(default_factory=list)

    def list_topics(self, timeout: float = -1) -> FakeClusterMetadata:
        return fake_metadata(self.topics)

    def assign(self, parts: list[TopicPartition]) -> None:
        self.assigned = parts

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        # nothing consumed yet from a partition read from its beginning: no position
        return [
            TopicPartition(tp.topic, tp.partition, tp.offset + 10 if tp.offset >= 0 else -1001)
            for tp in parts
        ]

    def close(self) -> None:
        return None


def test_legacy_offset_keys_are_read_in_the_one_format() -> None:
    assert normalise_offsets({"mg.w|0": 5, "mg.w:1": 7, "mg.w|1": 3, "a.b|2": 1}) == {
        offset_key("mg.w", 0): 5,
        offset_key("mg.w", 1): 7,  # the current key wins over its legacy twin
        offset_key("a.b", 2): 1,
    }


def test_assigned_consumer_resumes_at_saved_offsets_and_reports_offset_keys() -> None:
    raw = FakeConsumer({"w": 2, "d": 1})
    c = AssignedConsumer(raw, {"w|0": 4, offset_key("d", 0): 9})  # type: ignore[arg-type]
    c.subscribe(["w", "d"])
    assert [(tp.topic, tp.partition, tp.offset) for tp in raw.assigned] == [
        ("w", 0, 4),
        ("w", 1, OFFSET_BEGINNING),
        ("d", 0, 9),
    ]
    positions = c.positions()
    assert positions == {offset_key("w", 0): 14, offset_key("d", 0): 19}  # w:1 has no position yet
    c.close()  # everything else is the wrapped consumer's


def test_a_missing_topic_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer, "TOPIC_WAIT_SECONDS", 0.0)
    c = AssignedConsumer(FakeConsumer({"w": 1}), {})  # type: ignore[arg-type]
    with pytest.raises(DependencyError, match="'missing' does not exist"):
        c.subscribe(["w", "missing"])


def test_a_lost_lease_is_a_conflict() -> None:
    assert issubclass(LostLeaseError, ConflictError)


def decision(**kw: Any) -> RoutingDecision:
    fields: dict[str, Any] = {
        "decision_id": "dec-1",
        "model": "fraud",
        "action": "rollback",
        "reason": "accuracy dropped",
        "old_weights": {"v1": 0.8, "v2": 0.2},
        "new_weights": {"v1": 1.0, "v2": 0.0},
        "revision_before": 3,
        "decided_at": datetime(2026, 11, 1, 12, tzinfo=UTC),
    }
    return RoutingDecision(**(fields | kw))


class NoWriter:
    def read(self, model: str) -> RoutingTable | None:
        return None

    def write(self, model: str, weights: dict[str, float], **kw: Any) -> RoutingTable:
        raise AssertionError("not expected")


@dataclass
class FakeProducer:
    error: object | None = None
    unsent: int = 0
    sent: list[bytes] = field(default_factory=list)

    def produce(self, topic: str, *, on_delivery: Callable[..., None], **kw: Any) -> None:
        self.sent.append(kw["value"])
        on_delivery(self.error, None)

    def flush(self, timeout: float = -1) -> int:
        return self.unsent


def applier(producer: FakeProducer) -> DecisionApplier:
    return DecisionApplier(
        NoWriter(),  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        "127.0.0.1:1",
        "mg.decisions",
        actor="controller:test",
        metrics=ControllerMetrics(CollectorRegistry()),
        log=structlog.get_logger("test"),
    )


def test_a_weight_change_without_a_base_revision_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="without a base revision"):
        applier(FakeProducer()).write(decision(revision_before=None), None)


@pytest.mark.parametrize(
    ("error", "unsent"), [("broker down", 0), (None, 1)], ids=["nack", "timeout"]
)
def test_an_unacknowledged_publish_is_a_dependency_error(error: str | None, unsent: int) -> None:
    a = applier(FakeProducer(error=error, unsent=unsent))
    with pytest.raises(DependencyError, match="decision publish failed"):
        a.publish([decision()])
    assert a.published == []


def test_a_published_decision_is_recorded_and_counted() -> None:
    a = applier(FakeProducer())
    a.publish([decision()])
    assert [d.decision_id for d in a.published] == ["dec-1"]
    assert subject(decision()) == "v2"  # a rollback is about the version losing traffic
    assert subject(decision(action="ramp", new_weights={"v1": 0.5, "v2": 0.5})) == "v2"
