"""Every panel query of the Grafana dashboards, run against the real Prometheus.

Real services feed it: the SDK publishes predictions (with stage latencies, errors,
features) and labels to Kafka; the edge validator, the metrics processor and the drift
processor consume them in threads; the controller's metric families are registered and
set the way the controller sets them. One scrape target per test run, selected through
the dashboards' ``$job`` variable, so other tests' series never satisfy a panel.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.topics import Topics
from modelguard.core.drift import DriftConfig
from modelguard.sdk import EventSDK
from modelguard_services.controller.app import ControllerMetrics
from modelguard_services.drift.app import DriftService
from modelguard_services.metrics.app import MetricsService
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.validator.app import ValidatorService
from tests.support.paths import ROOT
from tests.support.prom import PrometheusHelper, value
from tests.support.servers import Servers
from tests.support.threads import start_thread

pytestmark = pytest.mark.integration
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
# Names the design guide requires; each must be shown by some panel.
DESIGN_NAMES = {
    "model_accuracy",
    "model_precision",
    "model_recall",
    "model_f1_score",
    "model_predictions_total",
    "model_prediction_errors_total",
    "model_inference_duration_seconds_bucket",
    "model_data_drift_detected",
    "model_drifted_columns_ratio",
    "model_concept_drift_detected",
    "model_accuracy_drop_percent",
    "psi_score",
    "ks_statistic",
}
# Series that exist only after a failure of a process this test does not start.
FAILURE_ONLY = {"modelguard_routing_redis_errors_total": "the SDK routing client's Redis errors"}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every target of every panel."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def substitute(expr: str, job: str, model: str) -> str:
    """What Grafana sends with $job = this test's target and every other variable = All."""
    values = {
        "$job": job,  # [a-z0-9-]: nothing to escape
        "$model": model,
        "$version": ".*",
        "$feature": ".*",
        "$stage": "inference",
        "$__rate_interval": "1m",
    }
    for var, val in values.items():
        expr = expr.replace(var, val)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


@pytest.fixture
def pipeline(
    servers: Servers, topics: Topics, prometheus: PrometheusHelper
) -> Iterator[tuple[str, str]]:
    """Services running on this test's topics, scraped under one job; yields (job, model)."""
    model = f"dash-{uuid.uuid4().hex[:8]}"
    settings = MetricsSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        redis_url=servers.redis_url,
        topic_prefix=topics.prefix,
        metrics_baselines={model: 0.9},
        metrics_group_id=f"m-{topics.prefix}",
    )
    common = CommonSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        redis_url=servers.redis_url,
        topic_prefix=topics.prefix,
    )
    registries = [CollectorRegistry() for _ in range(5)]
    services: list[Any] = [
        ValidatorService(common, registries[0], group_id=f"v-{topics.prefix}"),
        MetricsService(settings, registries[1]),
        DriftService(
            common,
            registries[2],
            # windows and warm-ups are one partition's (ADR 0015): about 160 predictions
            # of each version reach each of the 3 partitions here
            config=DriftConfig(window_events=50, warmup_events=60),
            group_id=f"d-{topics.prefix}",
        ),
    ]
    controller = ControllerMetrics(registries[3])
    sdk = EventSDK(servers.kafka_bootstrap, topics=topics, registry=registries[4])
    servers_ = [MetricsServer(r) for r in registries]
    job = f"dash-{uuid.uuid4().hex[:8]}"
    for s in servers_:
        prometheus.register(s.target, job=job)
    stop = threading.Event()
    threads = [start_thread(s.run, stop, name=type(s).__name__) for s in services]
    try:
        publish(sdk, model, servers.kafka_bootstrap, topics)
        set_controller_metrics(controller, model)
        yield job, model
    finally:
        stop.set()
        try:
            for t in threads:
                t.join(timeout=60)  # raises what a service raised, or if it still runs
        finally:
            sdk.close()
            for s in servers_:
                s.close()


def publish(sdk: EventSDK, model: str, bootstrap: str, topics: Topics) -> None:
    rng = np.random.default_rng(3)
    for i in range(1000):
        version = "v1" if i % 2 else "v2"
        with sdk.timer(model, version) as timer:  # the SDK's own histogram, real timings
            for stage in ("preprocessing", "inference", "postprocessing"):
                with timer.stage(stage):
                    pass
        # per version and partition: a 60-event warm-up, then 50-event windows (the
        # smallest the window tests judge), drifted
        # from i = 450 on
        shift = 3.0 if i >= 450 else 0.0
        features = {"amount": float(rng.normal(shift, 1)), "age": float(rng.normal(0, 1))}
        y = int(rng.integers(0, 2))
        pid = f"{model}-{i}"
        if i % 50 == 0:
            sdk.emit_prediction(
                model=model, version=version, prediction_id=pid, error_type="timeout", timer=timer
            )
            continue
        pred = y if rng.random() < (0.9 if version == "v1" else 0.6) else 1 - y
        sdk.emit_prediction(
            model=model,
            version=version,
            prediction=pred,
            prediction_id=pid,
            features=features,
            timer=timer,
        )
        sdk.emit_label(prediction_id=pid, label=y, model=model)
    assert sdk.flush(30) == 0
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topics.predictions, key=b"x", value=b"{not json")  # a dead letter
    assert producer.flush(10) == 0


def set_controller_metrics(c: ControllerMetrics, model: str) -> None:
    """The controller's families, set as its loop sets them on a rollback."""
    c.leader.labels("replica-0").set(1)
    c.incidents.labels(model).set(1)
    c.decisions.labels(model, "rollback", "false").inc()
    c.conflicts.labels(model).inc(0)
    c.decide_seconds.observe(0.02)
    for version, weight in (("v1", 1.0), ("v2", 0.0)):
        c.weight.labels(model, version).set(weight)
        for status in ("healthy", "breach", "inconclusive", "error"):
            c.verdict.labels(model, version, status).set(
                1 if status == ("healthy" if version == "v1" else "breach") else 0
            )


def scraped_after(prometheus: PrometheusHelper, job: str, since: float) -> float:
    """Wait until every target of ``job`` was scraped after ``since`` (Unix seconds);
    returns the newest last scrape (waiting past it means one more scrape of each)."""
    prometheus.wait_for(
        f'min(timestamp(up{{job="{job}"}}))',
        lambda r: bool(r) and float(r[0]["value"][1]) > since,
        timeout=60,
    )
    return value(prometheus.query(f'max(timestamp(up{{job="{job}"}}))'))


def test_every_design_name_is_on_a_dashboard() -> None:
    shown = " ".join(expr for _, _, expr in panel_queries())
    missing = {n for n in DESIGN_NAMES if not re.search(rf"\b{n}\b", shown)}
    assert not missing


def test_every_panel_query_parses_and_returns_data(
    prometheus: PrometheusHelper, pipeline: tuple[str, str]
) -> None:
    job, model = pipeline
    # Enough scrapes for rate() over the whole run, and every processor's output seen.
    prometheus.wait_for(
        f'count_over_time(up{{job="{job}"}}[1m])', lambda r: len(r) == 5, timeout=60
    )
    prometheus.wait_for(
        f'sum(model_labels_joined_total{{job="{job}"}})',
        lambda r: bool(r) and float(r[0]["value"][1]) >= 800,
        timeout=90,
    )
    prometheus.wait_for(
        f'count(psi_score{{job="{job}", model_name="{model}"}})',
        lambda r: bool(r) and float(r[0]["value"][1]) >= 2,  # a drift window closed
        timeout=90,
    )
    prometheus.wait_for(
        f'sum(modelguard_dead_letters_total{{job="{job}"}})', lambda r: bool(r), timeout=30
    )
    # two more scrapes of every target after the last change, so every rate() has 2
    # samples (polled: a loaded Prometheus scrapes late)
    scraped_after(prometheus, job, scraped_after(prometheus, job, time.time()))
    empty = []
    queries = panel_queries()
    assert len(queries) >= 30
    for board, title, expr in queries:
        promql = substitute(expr, job, model)
        resp = requests.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
        assert resp.status_code == 200, f"{board}/{title}: {promql}: {resp.text}"
        body = resp.json()
        assert body["status"] == "success", (board, title, body)
        if not body["data"]["result"] and not any(m in expr for m in FAILURE_ONLY):
            empty.append(f"{board} / {title}: {promql}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # Not vacuous: a misspelt name gives nothing for the same job and model.
    assert prometheus.query(substitute('model_accuracy_score{job=~"$job"}', job, model)) == []
