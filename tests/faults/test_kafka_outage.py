"""A Kafka outage under the processors (issue 11: "Kafka outages -> every service
resumes by itself").

A broker of this test only (the launcher's ``KafkaServer`` on free ports in a temporary
run directory; the shared stack's broker is never touched) serves metrics, drift,
experiments and the validator, each running in a thread through its app class. Mid-
stream the broker is stopped for ~10 s and started again (same data directory, so the
topics and committed offsets survive). Nothing is restarted by the test: every service
must reconnect by itself, consume the rest, and the metrics windows must equal the
offline recomputation with the pure core (nothing lost, nothing counted twice).

The validator (on the shared runtime, committing its offsets only after its dead
letters are delivered) is held to at-least-once with correct offsets, read from what it
actually handled (every prediction id it counted) and from the dead-letter topic:

- before the outage, the broker's committed offsets of its group cover all input so far
  (polled), so at-least-once allows no re-read of that input: each of its prediction
  ids is counted exactly once and each of its invalid records dead-lettered exactly once;
- after the outage it resumes by itself: the input produced after the broker is back is
  all handled within ``RESUME_S`` (polled) and the group's committed offsets reach the
  end of the topic again; each of those ids is counted at least once, and more than once
  only if the validator's partitions were reassigned after it handled them (a session
  lost before the next commit: the one re-read at-least-once allows).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import client_config, ensure_topics
from modelguard.adapters.settings import CommonSettings
from modelguard.adapters.topic_reader import read_to_end
from modelguard.contracts import DeadLetter, MetricWindowClosed, Topics, encode_event
from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.drift.processor import DriftConfig
from modelguard_devstack import Stack
from modelguard_services.drift.app import DriftService
from modelguard_services.experiments.app import ExperimentsService
from modelguard_services.metrics.app import MetricsService
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.validator.app import ValidatorService
from tests.faults.test_metrics_kill9 import T0, _offline, _produce, traffic
from tests.integration.test_metrics_service import merged_tumbling
from tests.support.kafka import read_to_end as read_topic_to_end
from tests.support.ports import private_kafka_config
from tests.support.servers import Servers
from tests.support.threads import start_thread
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
SEED = 20261204
OUTAGE_S = 10.0
#: The validator must have handled everything produced after the outage within this.
RESUME_S = 60.0
PARTITIONS = 3
#: Invalid records the validator must dead-letter, per half (before / after the outage).
N_INVALID = 6


@pytest.fixture
def private_kafka(servers: Servers, tmp_path: Path) -> Iterator[Stack]:
    """A broker of this test only (``servers`` first: the shared stack is resolved and
    its jars installed)."""
    stack = Stack(private_kafka_config(tmp_path / "run"))
    stack.up(only=["kafka"], timeout=120)
    yield stack
    stack.down(only=["kafka"])


class Service(Protocol):
    def run(self, stop: threading.Event, *, idle_exit_seconds: float | None = None) -> int: ...


def _exposures(n: int) -> list[ExposureLogged]:
    return [
        ExposureLogged(
            event_id=f"x{i}",
            experiment_id="e1",
            unit_id=f"u{i}",
            arm=("v1", "v2")[i % 2],
            model="fraud",
            event_time=T0,
        )
        for i in range(n)
    ]


def _send_exposures(bootstrap: str, topics: Topics, events: list[ExposureLogged]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for e in events:
        producer.produce(topics.exposures, key=e.unit_id.encode(), value=encode_event(e))
    assert producer.flush(30) == 0


def _send_invalid(bootstrap: str, topics: Topics, tag: str) -> list[bytes]:
    """``N_INVALID`` undecodable records on the predictions topic; returns their keys."""
    producer = Producer({"bootstrap.servers": bootstrap})
    keys = [f"bad-{tag}-{j}".encode() for j in range(N_INVALID)]
    for j, key in enumerate(keys):
        producer.produce(topics.predictions, key=key, value=b"{not json", partition=j % PARTITIONS)
    assert producer.flush(30) == 0
    return keys


class GroupOffsets:
    """The broker's view of a group: are its committed offsets at the end of a topic?"""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        # no subscribe: this consumer never joins the group, it only reads its offsets
        self._consumer = Consumer(client_config(bootstrap, **{"group.id": group}))
        self._tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.last: dict[int, tuple[int, int]] = {}

    def caught_up(self) -> bool:
        committed = self._consumer.committed(self._tps, timeout=30)
        self.last = {
            tp.partition: (tp.offset, self._consumer.get_watermark_offsets(tp, timeout=30)[1])
            for tp in committed
        }
        return all(c == end for c, end in self.last.values())

    def close(self) -> None:
        self._consumer.close()


def test_every_service_resumes_by_itself_after_a_broker_outage(
    settings: CommonSettings, private_kafka: Stack
) -> None:
    bootstrap = private_kafka.endpoints.kafka_bootstrap
    topics = Topics(prefix=settings.topic_prefix)
    ensure_topics(bootstrap, topics.all(), partitions=3)
    common = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
    metrics_settings = MetricsSettings(
        **{**common.model_dump(), "kafka_bootstrap_servers": bootstrap},
        metrics_window_lengths_s=(60.0,),
        metrics_last_n=500,
        metrics_label_ttl_s=5.0,
        metrics_orphan_grace_s=5.0,
        metrics_max_input_lag_s=10 * 86400.0,
        metrics_checkpoint_interval_s=0.3,
    )
    # one consumer group per service, as the services' settings give them (a group shared
    # by services with different subscriptions is not how they run)
    group = f"g-{topics.prefix}"
    metrics = MetricsService(metrics_settings, CollectorRegistry())
    drift = DriftService(
        common,
        CollectorRegistry(),
        config=DriftConfig(window_events=300, warmup_events=200),
        group_id=f"{group}-drift",
        checkpoint_interval=0.3,
    )
    experiments = ExperimentsService(
        common,
        CollectorRegistry(),
        group_id=f"{group}-experiments",
        checkpoint_interval=0.3,
        analysis_interval=0.5,
    )
    validator_group = f"{group}-validator"
    validator = ValidatorService(common, CollectorRegistry(), group_id=validator_group)
    # every prediction id the validator counts, and how often (re-reads show as > 1)
    counted: Counter[str] = Counter()
    observe = validator._counters.observe

    def counting(event: PredictionLogged) -> None:
        counted[event.prediction_id] += 1
        observe(event)

    validator._counters.observe = counting  # type: ignore[method-assign]
    validator_offsets = GroupOffsets(bootstrap, validator_group, topics.predictions)
    services: dict[str, Service] = {
        "metrics": metrics,
        "drift": drift,
        "experiments": experiments,
        "validator": validator,
    }
    stop = threading.Event()
    threads = {name: start_thread(svc.run, stop, name=name) for name, svc in services.items()}

    records = traffic(np.random.default_rng(SEED), 6000)
    half = len(records) // 2
    exposures = _exposures(600)
    try:
        _produce(bootstrap, topics, records[:half])
        bad_before = _send_invalid(bootstrap, topics, "before")
        _send_exposures(bootstrap, topics, exposures[:300])
        wait_for(lambda: metrics.processed == half, 120, "metrics: the first half")
        wait_for(lambda: experiments.processed == 300, 120, "experiments: the first half")
        ids_before = {e.prediction_id for kind, _, e in records[:half] if kind == "p"}
        wait_for(lambda: validator.processed == len(ids_before), 120, "validator: the first half")
        # at-least-once allows re-reading only what is not committed yet: nothing here
        wait_for(
            validator_offsets.caught_up,
            30,
            "validator: first half committed",
            progress=lambda: validator_offsets.last,
        )

        private_kafka.down(only=["kafka"])
        time.sleep(OUTAGE_S)  # the outage itself: the services keep running meanwhile
        assert all(t.is_alive() for t in threads.values()), [t.error for t in threads.values()]
        private_kafka.up(only=["kafka"], timeout=120)
        assignments_up = validator.runtime.assignments

        resumed_from = time.monotonic()
        _produce(bootstrap, topics, records[half:])
        bad_after = _send_invalid(bootstrap, topics, "after")
        _send_exposures(bootstrap, topics, exposures[300:])
        ids_after = {e.prediction_id for kind, _, e in records[half:] if kind == "p"}
        wait_for(
            lambda: ids_after <= set(counted),
            RESUME_S,
            "validator: resumed and handled the input produced after the outage",
            progress=lambda: f"{len(ids_after - set(counted))} of {len(ids_after)} missing",
        )
        resume_s = time.monotonic() - resumed_from
        wait_for(metrics.runtime.checkpoint, 60, "metrics: outputs delivered")
        wait_for(lambda: metrics.processed == len(records), 120, "metrics: everything")
        wait_for(lambda: drift.processed == len(records), 120, "drift: everything")
        wait_for(
            lambda: experiments.processed == len(exposures),
            120,
            "experiments: everything",
            progress=lambda: f"{experiments.processed} of {len(exposures)}",
        )
        wait_for(
            validator_offsets.caught_up,
            60,
            "validator: everything committed",
            progress=lambda: validator_offsets.last,
        )
        wait_for(metrics.runtime.checkpoint, 60, "metrics: outputs delivered")
        assert all(t.is_alive() for t in threads.values()), [t.error for t in threads.values()]
    finally:
        stop.set()
        try:
            for t in threads.values():
                t.join(timeout=60)  # raises what a service raised, or if it still runs
        finally:
            validator_offsets.close()

    # The validator: the input before the outage (committed) exactly once, the input
    # after it at least once, re-read only after its partitions were reassigned.
    assert set(counted) == ids_before | ids_after  # nothing lost, nothing invented
    assert {i: n for i, n in counted.items() if i in ids_before and n != 1} == {}
    reread_after = {i: n for i, n in counted.items() if i in ids_after and n != 1}
    assert not reread_after or validator.runtime.assignments > assignments_up, reread_after
    assert validator.processed == sum(counted.values())
    letters = Counter(
        m.key()
        for m in read_to_end(bootstrap, topics.dead_letter)
        if DeadLetter.from_headers(m.headers()).stage == "validator"
    )
    assert set(letters) == set(bad_before) | set(bad_after)
    assert all(letters[k] == 1 for k in bad_before), letters
    reread_letters = {k: n for k, n in letters.items() if n != 1}
    assert not reread_letters or validator.runtime.assignments > assignments_up, reread_letters
    log_line = (
        f"validator: resumed in {resume_s:.1f} s; {len(ids_before)}+{len(ids_after)} "
        f"predictions counted {sum(counted.values())} times; re-reads after the outage "
        f"{sum(reread_after.values()) - len(reread_after)}; assignments "
        f"{assignments_up}->{validator.runtime.assignments}; commits {validator.commits}"
    )
    sys.stdout.write(log_line + "\n")  # the run's figures (shown with -s)

    msgs = read_topic_to_end(bootstrap, topics.metric_windows)  # the services stopped
    got = merged_tumbling([MetricWindowClosed.model_validate_json(m.value()) for m in msgs])
    want = _offline(metrics_settings, records)
    assert set(got) == set(want)
    for key, agg in want.items():
        assert got[key].to_dict() == agg.to_dict(), key
