"""The metrics service in tests: settings on the test's topics (a fixture body that
deletes the changelog afterwards), a process started from settings, a service served in
a thread and scraped by Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import delete_topics
from modelguard.adapters.prometheus import MetricsServer
from modelguard.contracts import Topics
from modelguard_services.metrics.app import MetricsService, changelog_topic
from modelguard_services.metrics.settings import MetricsSettings
from tests.support.prom import PrometheusHelper
from tests.support.servers import Servers
from tests.support.services import spawn_service


def metrics_settings_on(
    servers: Servers, topics: Topics, **fields: Any
) -> Iterator[MetricsSettings]:
    """Fixture body: one 60 s window on the test's topics, any lateness accepted, a fast
    checkpoint; ``fields`` override. The changelog topic is deleted afterwards."""
    s = MetricsSettings(
        **{
            "kafka_bootstrap_servers": servers.kafka_bootstrap,
            "topic_prefix": topics.prefix,
            "metrics_group_id": f"g-{topics.prefix}",
            "metrics_window_lengths_s": (60.0,),
            "metrics_last_n": 100_000,
            "metrics_max_input_lag_s": 10 * 86400.0,
            "metrics_checkpoint_interval_s": 0.3,
            **fields,
        }
    )
    yield s
    delete_topics(servers.kafka_bootstrap, [changelog_topic(s)])


def spawn_metrics(settings: MetricsSettings, *extra: str) -> subprocess.Popen[bytes]:
    """``python -m modelguard_services.metrics`` configured by ``settings`` (environment)."""
    env = {
        **os.environ,
        "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MODELGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "MODELGUARD_METRICS_GROUP_ID": settings.metrics_group_id,
        "MODELGUARD_METRICS_WINDOW_LENGTHS_S": json.dumps(settings.metrics_window_lengths_s),
        "MODELGUARD_METRICS_LAST_N": str(settings.metrics_last_n),
        "MODELGUARD_METRICS_LABEL_TTL_S": str(settings.metrics_label_ttl_s),
        "MODELGUARD_METRICS_ORPHAN_GRACE_S": str(settings.metrics_orphan_grace_s),
        "MODELGUARD_METRICS_MAX_INPUT_LAG_S": str(settings.metrics_max_input_lag_s),
        "MODELGUARD_METRICS_CHECKPOINT_INTERVAL_S": str(settings.metrics_checkpoint_interval_s),
        "MODELGUARD_LOG_LEVEL": "WARNING",
    }
    return spawn_service("metrics", env, *extra)


@dataclass
class Served:
    """A metrics service running in a thread, its ``/metrics`` server and scrape job."""

    service: MetricsService
    server: MetricsServer
    job: str
    worker: threading.Thread


@contextmanager
def serving_metrics(settings: MetricsSettings, prometheus: PrometheusHelper) -> Iterator[Served]:
    """Run a :class:`MetricsService` in a thread, scraped by ``prometheus``; stopped and
    its server closed when the block ends (the caller asserts the worker ended)."""
    registry = CollectorRegistry()
    server = MetricsServer(registry)
    job = prometheus.register(server.target)
    service = MetricsService(settings, registry)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    try:
        yield Served(service, server, job, worker)
    finally:
        stop.set()
        worker.join(timeout=30)
        server.close()
