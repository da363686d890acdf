"""The drift service learning its warm-up reference from a backlog on three partitions
(the scenario of tests/integration/test_dashboards.py: a 3 sigma shift on most of the
first window must be flagged)."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, encode_event
from modelguard.core.drift import DriftConfig
from modelguard_services.drift.app import DriftService
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for
from tests.unit.test_drift_warmup import _dashboard_stream

pytestmark = pytest.mark.integration


def test_backlog_warmup_learns_clean_reference_and_flags_the_shift(
    servers: Servers, topics: Topics, settings: CommonSettings
) -> None:
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    events = _dashboard_stream()
    for e in events:  # all published before the service starts: a backlog
        producer.produce(topics.predictions, key=e.prediction_id.encode(), value=encode_event(e))
    assert producer.flush(10) == 0
    service = DriftService(
        settings,
        CollectorRegistry(),
        config=DriftConfig(window_events=200, warmup_events=200),
        group_id=f"g-{topics.prefix}",
    )
    stop = threading.Event()
    worker = start_thread(service.run, stop, name="drift")
    try:
        wait_for(
            lambda: len(service.last_reports) >= 2,
            120,
            "a window report of both versions",
            progress=lambda: sorted(service.last_reports),
        )
    finally:
        stop.set()
        worker.join(timeout=60)  # raises what the service raised, or if it still runs
    reports = service.last_reports
    assert set(reports) == {("dash", "v1"), ("dash", "v2")}
    for report in reports.values():
        amount = report.verdict.feature_results()["amount"]
        assert amount.drift_detected and report.verdict.drifted_share == 0.5
        assert not report.verdict.feature_results()["age"].drift_detected
