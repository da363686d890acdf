"""The validator on the shared runtime (issue 11): offsets are committed only when the
broker confirms them (a failed commit is retried at the next checkpoint, the offsets
are not marked saved), and an event whose counting raises is dead-lettered by the
runtime's error boundary instead of stopping the service.

No broker: the clients point at a closed port and never connect; the consumer's
``commit`` is replaced by a recording fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import offset_key
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import PredictionLogged
from modelguard.contracts.dead_letter import PROCESS_ERROR
from modelguard_services.validator.app import ValidatorService
from tests.support.events import prediction

SETTINGS = CommonSettings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix="unit-v")
TOPIC = SETTINGS.topics.predictions


class FakeCommits:
    """Stands in for the consumer's ``commit``: fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing: Exception | None = None
        self.partition_error: KafkaError | None = None
        self.sync: list[list[tuple[str, int, int]]] = []
        self.asynchronous: list[list[tuple[str, int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        flat = [(tp.topic, tp.partition, tp.offset) for tp in offsets]
        if asynchronous:
            self.asynchronous.append(flat)
            return None
        if self.failing is not None:
            raise self.failing
        self.sync.append(flat)
        out = [TopicPartition(t, p, o) for t, p, o in flat]
        if self.partition_error is not None:
            # confluent-kafka reports a per-partition failure in the returned list
            return [_with_error(tp, self.partition_error) for tp in out]
        return out


def _with_error(tp: TopicPartition, error: KafkaError) -> Any:
    class Failed:
        topic, partition, offset = tp.topic, tp.partition, tp.offset

    Failed.error = error  # type: ignore[attr-defined]
    return Failed()


class Validator(NamedTuple):
    svc: ValidatorService
    fake: FakeCommits
    registry: CollectorRegistry


@pytest.fixture
def service() -> Iterator[Validator]:
    registry = CollectorRegistry()
    svc = ValidatorService(SETTINGS, registry, group_id="g-unit")
    real = svc.runtime.consumer
    fake = FakeCommits()
    svc.runtime.consumer = fake  # type: ignore[assignment]
    # as after an assignment of partition 0 at offset 0, then 5 events handled
    svc.runtime.assigned = [TopicPartition(TOPIC, 0)]
    svc.runtime.offsets = {offset_key(TOPIC, 0): 5}
    svc.runtime._saved = {offset_key(TOPIC, 0): 0}
    yield Validator(svc, fake, registry)
    svc.runtime.producer.purge()  # dead letters for a broker that is not there
    real.close()


def test_a_failed_commit_is_not_taken_as_saved_and_is_retried(
    service: Validator,
) -> None:
    svc, fake, _ = service
    fake.failing = KafkaException(KafkaError(KafkaError._WAIT_COORD))
    assert svc.checkpoint() is False
    assert svc.committed == {} and svc.commits == 0
    fake.failing = None
    fake.partition_error = KafkaError(KafkaError.NOT_COORDINATOR)
    assert svc.checkpoint() is False  # a per-partition error is a failure too
    assert svc.committed == {}
    fake.partition_error = None
    assert svc.checkpoint() is True  # retried: the offsets had not been marked saved
    assert svc.committed == {offset_key(TOPIC, 0): 5} and svc.commits == 1
    assert fake.sync[-1] == [(TOPIC, 0, 5)]
    assert svc.checkpoint() is True  # unchanged offsets: nothing committed again
    assert len(fake.sync) == 2


def test_restore_resumes_at_the_groups_committed_offsets(
    service: Validator,
) -> None:
    assert service.svc.restore([0, 1, 2]) == {}  # no offsets of its own: the group's apply


def test_an_event_whose_counting_raises_is_dead_lettered_and_the_rest_counted(
    service: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _, registry = service
    counters = svc._counters
    observe = counters.observe

    def fragile(event: PredictionLogged) -> None:
        if event.prediction_id == "boom":
            raise ValueError("cannot count this one")
        observe(event)

    monkeypatch.setattr(counters, "observe", fragile)
    batch = [
        Received(prediction(prediction_id=pid), TOPIC, 0, i, pid.encode())
        for i, pid in enumerate(("a", "boom", "b"))
    ]
    svc.runtime.handle(batch)
    assert svc.runtime.process_errors == 1
    assert svc.processed == 3
    dead = {"service": "validator", "source_topic": TOPIC, "error_kind": PROCESS_ERROR}
    assert registry.get_sample_value("modelguard_dead_letters_total", dead) == 1
    counted = {"model_name": "fraud", "model_version": "v1", "predicted_class": "1"}
    assert registry.get_sample_value("modelguard_validated_predictions_total", counted) == 2
