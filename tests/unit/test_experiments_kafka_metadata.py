"""The experiments service outlives a broker that cannot answer a metadata request when
it first analyses (README: "After a broker outage every service resumes by itself").

Before: ``ExperimentsService.partitions()`` let the ``KafkaException`` of
``list_topics`` escape ``analyze_all`` (it runs in the runtime's ``tick``), which ended
the process. Now the analysis is postponed to the next interval and logged.

No servers: closed ports; the consumer's metadata call is a fake that fails, then answers.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard_services.experiments.app import ExperimentsService
from tests.support.experiments import experiment_spec
from tests.support.kafka import FakeClusterMetadata, fake_metadata

SETTINGS = CommonSettings(
    kafka_bootstrap_servers="127.0.0.1:1",
    redis_url="redis://127.0.0.1:1/0",
    topic_prefix="unit-exp",
    redis_prefix="unit-exp",
)


class FlakyMetadata:
    def __init__(self, topic: str, failures: int) -> None:
        self.topic, self.failures, self.calls = topic, failures, 0

    def list_topics(self, topic: str, timeout: float) -> FakeClusterMetadata:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "all brokers down"))
        return fake_metadata({self.topic: 3})


def test_a_failing_metadata_request_postpones_the_analysis() -> None:
    svc = ExperimentsService(SETTINGS, CollectorRegistry())
    meta = FlakyMetadata(SETTINGS.topics.exposures, failures=1)
    svc._raw = meta  # type: ignore[assignment]
    spec = experiment_spec()
    svc.registry.all = lambda status=None: [spec]  # type: ignore[method-assign,assignment]
    analysed: list[str] = []
    svc.analyze_one = lambda s: analysed.append(s.experiment_id)  # type: ignore[method-assign,assignment,func-returns-value]
    svc.tasks = {p: None for p in range(3)}  # type: ignore[misc]

    assert svc.analyze_all() == []  # before: KafkaException out of tick(), the process ended
    assert analysed == [] and svc._partitions is None
    svc.analyze_all()  # the brokers answer again: analysed at the next interval
    assert analysed == [spec.experiment_id] and svc.partitions() == 3
    svc.runtime.ingest.close()
