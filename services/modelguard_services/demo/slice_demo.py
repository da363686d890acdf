"""Foundation demo: predictions through Kafka, validation, dead letters, Prometheus, Redis."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import ensure_topics, make_producer
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import PredictionLogged, encode_event
from modelguard_devstack import Stack
from modelguard_services.demo.narrator import Narrator
from modelguard_services.validator.app import ValidatorService


def _prom_value(prometheus_url: str, promql: str) -> float | None:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _count_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen, deadline = 0, time.monotonic() + timeout
    while seen < expected and time.monotonic() < deadline:
        seen += sum(1 for m in consumer.consume(100, timeout=0.5) if m.error() is None)
    consumer.close()
    return seen


def run_slice_demo(*, events: int, keep: bool) -> int:
    say = Narrator().say
    stack = Stack()
    already = {n for n, st in stack.status().items() if st["ready"]}
    say("starting the local stack (Kafka KRaft, Redis, Prometheus, Alertmanager)...")
    for name, secs in stack.up().items():
        say(f"  {name:<12} ready in {secs:5.2f}s" if secs else f"  {name:<12} already running")
    eps = stack.endpoints
    prefix = f"demo{datetime.now(UTC):%H%M%S}"
    settings = CommonSettings(
        kafka_bootstrap_servers=eps.kafka_bootstrap,
        redis_url=eps.redis_url,
        topic_prefix=prefix,
        redis_prefix=prefix,
    )
    ensure_topics(eps.kafka_bootstrap, settings.topics.all())
    registry = CollectorRegistry()
    metrics = MetricsServer(registry)
    target_file = Path(eps.prometheus_targets) / f"{prefix}.json"
    target_file.write_text(
        json.dumps([{"targets": [metrics.target], "labels": {"job_id": prefix}}])
    )
    service = ValidatorService(settings, registry, group_id=f"{prefix}-validator")
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    say(f"validator running; its /metrics at {metrics.url}")
    try:
        producer = make_producer(eps.kafka_bootstrap)
        t0 = datetime.now(UTC)
        for i in range(events):
            event = PredictionLogged(
                prediction_id=f"{prefix}-{i}",
                model="fraud",
                version="v1" if i % 4 else "v2",
                unit_id=f"user-{i % 97}",
                event_time=t0 + timedelta(milliseconds=i),
                features={"amount": float(i % 300), "country": "DE"},
                prediction=i % 2,
                latency_ms=5.0,
            )
            producer.produce(
                settings.topics.predictions,
                key=event.prediction_id.encode(),
                value=encode_event(event),
            )
            producer.poll(0)
        bad = [b"{oops", b'{"prediction_id": "x", "latency_ms": NaN}']
        for raw in bad:
            producer.produce(settings.topics.predictions, value=raw)
        producer.flush(10)
        say(
            f"produced {events} valid and {len(bad)} invalid predictions to "
            f"{settings.topics.predictions}"
        )
        sel = f'job_id="{prefix}"'
        deadline = time.monotonic() + 30
        valid = None
        while time.monotonic() < deadline:
            valid = _prom_value(
                eps.prometheus_url,
                f'sum(modelguard_events_consumed_total{{{sel},outcome="valid"}})',
            )
            if valid == events:
                break
            time.sleep(0.5)
        invalid = _prom_value(eps.prometheus_url, f"sum(modelguard_dead_letters_total{{{sel}}})")
        say(f"Prometheus ({eps.prometheus_url}) scraped: valid={valid} dead-lettered={invalid}")
        dead = _count_topic(eps.kafka_bootstrap, settings.topics.dead_letter, len(bad))
        say(f"dead-letter topic {settings.topics.dead_letter} holds {dead} records")
        client = make_redis(eps.redis_url)
        key = settings.redis_keys.routing("fraud")
        client.hset(key, mapping={"revision": 1, "weights": json.dumps({"v1": 0.75, "v2": 0.25})})
        say(f"Redis {key}: {client.hgetall(key)}")
        client.delete(key)
        ok = valid == events and invalid == len(bad) and dead == len(bad)
        say("loop verified" if ok else "loop FAILED: counts differ (see above)")
        return 0 if ok else 1
    finally:
        stop.set()
        worker.join(timeout=15)
        metrics.close()
        target_file.unlink(missing_ok=True)
        if not keep:
            stopped = stack.down(
                [n for n in ("kafka", "redis", "prometheus", "alertmanager") if n not in already]
            )
            say(f"stopped {', '.join(stopped) or 'nothing (servers were already running)'}")
