"""The drift service learning its warm-up references from a backlog on three partitions
(the scenario of tests/integration/test_dashboards.py: a 3 sigma shift on most of the
stream must be flagged). Each partition warms up on its own first predictions (ADR
0015: partition order is production order, so a backlog read one partition after the
other cannot put a drifted history into the warm-up) and every partition's windows
equal the offline run over that partition's stream."""

from __future__ import annotations

import threading

import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.drift_store import ReferenceStore, partition_name
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics, encode_event
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState
from modelguard.core.drift.evaluation import WindowVerdict
from modelguard_services.drift.app import DriftService
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for
from tests.unit.test_drift_warmup import PARTITIONS, _dashboard_stream, _partition

pytestmark = pytest.mark.integration
CONFIG = DriftConfig(window_events=60, warmup_events=60)


def test_backlog_warmup_learns_clean_reference_and_flags_the_shift(
    servers: Servers, topics: Topics, settings: CommonSettings, redis_client: redis.Redis
) -> None:
    producer = Producer({"bootstrap.servers": servers.kafka_bootstrap})
    events = _dashboard_stream()
    for e in events:  # all published before the service starts: a backlog
        producer.produce(
            topics.predictions,
            key=e.prediction_id.encode(),
            value=encode_event(e),
            partition=_partition(e),
        )
    assert producer.flush(10) == 0
    service = DriftService(
        settings, CollectorRegistry(), config=CONFIG, group_id=f"g-{topics.prefix}"
    )
    stop = threading.Event()
    worker = start_thread(service.run, stop, name="drift")
    try:
        wait_for(
            lambda: service.processed >= len(events),
            120,
            "the backlog processed",
            progress=lambda: service.processed,
        )
        monitors = {p: dict(s.monitors) for p, s in service.partitions.states.items()}
    finally:
        stop.set()
        worker.join(timeout=60)  # raises what the service raised, or if it still runs
    assert set(service.last_reports) == {("dash", "v1"), ("dash", "v2")}
    # the reference each version's warm-up published first: every partition adopts it
    # at the end of its own warm-up
    store = ReferenceStore(redis_client, settings.redis_prefix)
    published = {v: store.load("dash", v) for v in ("v1", "v2")}
    assert all(ref is not None and store.is_learned("dash", v) for v, ref in published.items())
    processor = DriftProcessor(CONFIG, adopt=lambda ref: published[ref.version] or ref)
    age_alarms = 0
    for p in range(PARTITIONS):
        offline = DriftState(stream=partition_name(p))
        processor.run([e for e in events if _partition(e) == p], offline, flush=False)
        assert set(monitors[p]) == {("dash", "v1"), ("dash", "v2")}
        for key, mon in monitors[p].items():
            report = mon.last_report
            assert report is not None
            want = offline.monitors[key].last_report
            assert want is not None and report.window_index == want.window_index
            # the same verdict (a result's extra ``metrics`` may differ in the last bit:
            # floats summed in batch order)
            assert _results(report.verdict) == _results(want.verdict)
            assert report.verdict.feature_results()["amount"].drift_detected
            age_alarms += report.verdict.feature_results()["age"].drift_detected
    # windows of 60 against a 60-prediction reference: a false alarm on the quiet
    # feature is possible (0 to 2 of 6 for the three possible first-published warm-ups)
    assert age_alarms <= 2


def _results(verdict: WindowVerdict) -> list[tuple[object, ...]]:
    return [
        (r.feature, r.test, r.statistic, r.p_value, r.drift_detected, r.severity)
        for r in verdict.results
    ]
