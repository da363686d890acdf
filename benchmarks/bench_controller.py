"""Detection-to-routing latency of the rollback controller on the real broker and Redis.

For each of N incidents (one model each): the decisive bad metric window is produced
to Kafka as the metrics processor publishes it, one partial per source partition (the
predictions topic has 3), and the clock stops when the routing table change notice
arrives from Redis (pub/sub on the change channel); the controller merges the partials
first. The same run also measures whole windows (``partitions=[]``, one event per
window). Baseline in the same run: a raw confluent-kafka consumer, configured like the
controller's (``make_low_latency_consumer``: ``LOW_LATENCY_CONSUMER`` settings, consume
returns at the first record), that for each record does one HSET + PUBLISH on Redis
(the floor of any Kafka-to-Redis reaction). The three runs (baseline, partials, whole)
follow each other; the load is recorded. Prints one JSON object.

    .venv/bin/python benchmarks/bench_controller.py [--incidents 100] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import (
    client_config,
    delete_topics,
    ensure_topics,
    make_low_latency_consumer,
)
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import encode_event
from modelguard.contracts.common import WindowSpec
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control import parse_policies
from modelguard.core.metrics import Aggregate, ClosedWindow, Pair, to_event
from modelguard.routing import RoutingTableStore
from modelguard_services.controller.app import ControllerService

POLICY = """
models:
  {name}:
    max_evidence_age_seconds: 3600
    guardrails:
      - {{name: errors, kind: error_rate, threshold: 0.01, min_samples: 50}}
      - {{name: accuracy, kind: accuracy_drop, max_drop_percent: 2, min_samples: 50}}
    rollout: {{hold_seconds: 3600}}
"""


def window(model: str, version: str, i: int, t0: datetime, bad: bool) -> MetricWindowClosed:
    return MetricWindowClosed(
        event_id=f"{model}-{version}-{i}",
        model=model,
        version=version,
        window=WindowSpec(kind="tumbling", length_seconds=1),
        window_start=t0 + timedelta(seconds=i),
        window_end=t0 + timedelta(seconds=i + 1),
        n_predictions=100,
        n_labelled=100,
        n_errors=5 if bad else 0,
        metrics={"accuracy": 0.8 if bad else 0.9},
        emitted_at=t0 + timedelta(seconds=i + 1),
    )


def partials(
    model: str, version: str, i: int, t0: datetime, bad: bool, parts: int
) -> list[MetricWindowClosed]:
    """Window ``i`` as the metrics processor publishes it: one partial per partition."""
    out = []
    for p in range(parts):
        agg = Aggregate()
        for k in range(100 // parts + 1):
            failed = bad and k % 20 == 0
            agg.add_prediction(None if failed else "1", 20.0, "timeout" if failed else None)
            if not failed:
                label = "0" if bad and k % 5 == 0 else "1"
                agg.add_pair(Pair.classification(label, "1", None, 0.5))
        start = (t0 + timedelta(seconds=i)).timestamp()
        closed = ClosedWindow(
            model, version, "tumbling", 1.0, None, start, start + 1.0, p, agg, agg.metrics()
        )
        out.append(to_event(closed, emitted_at=t0 + timedelta(seconds=i + 1)))
    return out


def events_of(
    model: str, version: str, i: int, t0: datetime, bad: bool, parts: int
) -> list[MetricWindowClosed]:
    if parts <= 1:
        return [window(model, version, i, t0, bad)]
    return partials(model, version, i, t0, bad, parts)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_notice(pubsub: redis.client.PubSub, model: str, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.05)
        if msg and msg["type"] == "message" and json.loads(msg["data"])["model"] == model:
            return time.perf_counter()
    raise TimeoutError(f"no routing change for {model}")


def notice_latency(
    producer: Producer, topic: str, pubsub: redis.client.PubSub, model: str, payloads: list[bytes]
) -> float:
    """Seconds from producing ``payloads`` (keyed by ``model``) to the change notice of
    ``model``: the same measurement for the controller and the baseline."""
    start = time.perf_counter()
    for payload in payloads:
        producer.produce(topic, key=model.encode(), value=payload)
    producer.flush(10)
    return wait_notice(pubsub, model) - start


def controller_run(settings: CommonSettings, n: int, parts: int) -> list[float]:
    r = make_redis(settings.redis_connection())
    store = RoutingTableStore(r, settings.redis_keys)
    models = [f"m{i}" for i in range(n)]
    policies = {}
    for m in models:
        policies.update(parse_policies(POLICY.format(name=m)))
        store.write(m, {"v1": 0.95, "v2": 0.05}, expected_revision=0, actor="bench")
    producer = Producer(client_config(settings.kafka_connection(), **{"linger.ms": 0}))
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    for m in models:
        for v in ("v1", "v2"):
            for e in events_of(m, v, 0, t0, False, parts):
                producer.produce(
                    settings.topics.metric_windows, key=m.encode(), value=encode_event(e)
                )
    producer.flush(10)
    service = ControllerService(settings, CollectorRegistry(), policies, store, tick_seconds=5.0)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    pubsub = r.pubsub()
    pubsub.subscribe(settings.redis_keys.routing_changes)
    try:
        deadline = time.monotonic() + 30
        while r.get(f"{settings.redis_keys.prefix}:control:state") is None:
            if time.monotonic() > deadline:
                raise TimeoutError("controller did not start")
            time.sleep(0.05)
        time.sleep(1.0)  # warm windows consumed
        latencies = []
        for m in models:
            payloads = [encode_event(e) for e in events_of(m, "v2", 1, t0, True, parts)]
            topic = settings.topics.metric_windows
            latencies.append(notice_latency(producer, topic, pubsub, m, payloads))
    finally:
        stop.set()
        worker.join(timeout=20)
        pubsub.close()
    assert len(service.decisions) == n, len(service.decisions)
    return latencies


def baseline_run(settings: CommonSettings, n: int) -> list[float]:
    r = make_redis(settings.redis_connection())
    topic = settings.topics.experiment_analyses  # an unused topic of the same set
    consumer = make_low_latency_consumer(
        settings.kafka_connection(),
        f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
    )
    consumer.subscribe([topic])
    stop = threading.Event()
    ready = threading.Event()

    def react() -> None:
        while not stop.is_set():
            for msg in consumer.consume(100, timeout=0.1):
                if msg.error() is None:
                    key = msg.key() or b""
                    r.hset(f"{settings.redis_keys.prefix}:baseline", key, msg.value() or b"")
                    r.publish(
                        f"{settings.redis_keys.prefix}:baseline-changes",
                        json.dumps({"model": key.decode()}),
                    )
            if consumer.assignment():
                ready.set()

    worker = threading.Thread(target=react, daemon=True)
    worker.start()
    ready.wait(30)
    time.sleep(1.0)
    pubsub = r.pubsub()
    pubsub.subscribe(f"{settings.redis_keys.prefix}:baseline-changes")
    producer = Producer(client_config(settings.kafka_connection(), **{"linger.ms": 0}))
    t0 = datetime.now(UTC)
    latencies = []
    try:
        for i in range(n):
            m = f"b{i}"
            payloads = [encode_event(window(m, "v2", 1, t0, True))]
            latencies.append(notice_latency(producer, topic, pubsub, m, payloads))
    finally:
        stop.set()
        worker.join(timeout=10)
        consumer.close()
        pubsub.close()
    return latencies


TARGET_P99_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=3, help="source partitions")
    parser.add_argument("--quick", action="store_true", help="40 incidents")
    args = parser.parse_args()
    if args.quick:
        args.incidents = 40
    configure_logging("ERROR")
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = {}
    for mode in ("baseline", "partials", "whole"):
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        settings = CommonSettings(topic_prefix=prefix, redis_prefix=prefix)
        ensure_topics(settings.kafka_connection(), settings.topics.all(), partitions=3)
        r = make_redis(settings.redis_connection())
        try:
            if mode == "baseline":
                runs[mode] = baseline_run(settings, args.incidents)
            else:
                parts = args.partitions if mode == "partials" else 1
                runs[mode] = controller_run(settings, args.incidents, parts)
        finally:
            delete_topics(settings.kafka_connection(), settings.topics.all())
            for key in r.scan_iter(f"{prefix}:*"):
                r.delete(key)
    base, ctl, whole = runs["baseline"], runs["partials"], runs["whole"]
    ms = 1000.0
    p99 = round(pct(ctl, 0.99) * ms, 1)
    base_p99 = round(pct(base, 0.99) * ms, 1)
    result = {
        "benchmark": "controller_detection_to_routing",
        "incidents": args.incidents,
        "input": f"{args.partitions} partial windows per window (merged by the controller)",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "figures": {
            "detection_to_routing_p99_ms": {
                "label": "detection -> Redis routing change, p99",
                "value": p99,
                "unit": "ms",
                "baseline": "raw consumer -> Redis HSET+PUBLISH -> pub/sub, p99, same run",
                "baseline_value": base_p99,
                "ratio": round(p99 / max(base_p99, 1e-3), 2),
                "target": TARGET_P99_MS,
                "higher_is_better": False,
                "pass": p99 <= TARGET_P99_MS,
            },
        },
        "p50_ms": round(statistics.median(ctl) * ms, 1),
        "p99_ms": p99,
        "max_ms": round(max(ctl) * ms, 1),
        "target_p99_ms": TARGET_P99_MS,
        "whole_window_p50_ms": round(statistics.median(whole) * ms, 1),
        "whole_window_p99_ms": round(pct(whole, 0.99) * ms, 1),
        "baseline": "raw low-latency consumer -> Redis HSET+PUBLISH -> pub/sub",
        "baseline_p50_ms": round(statistics.median(base) * ms, 1),
        "baseline_p99_ms": base_p99,
        "ratio_p50": round(statistics.median(ctl) / statistics.median(base), 2),
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
