"""SDK throughput and caller overhead against raw confluent-kafka, on the real broker.

Prints one JSON object (``figures``: each with its same-run baseline, ratio, target and
pass/fail, the shape ``benchmarks/summary.py`` reads).

What is measured (ADR 0013): the SDK side is a model server's documented request path,
exactly as a user writes it (``emitter.py``'s docstring)::

    with sdk.timer(model, version) as timer:
        with timer.stage("inference"):
            pass                                   # the model's work: not the SDK's
    sdk.emit_prediction(model=..., version=..., unit_id=..., features=...,
                        prediction=..., probabilities=..., timer=timer)

so the SDK's id generation, clock, validation of the contract's bounds, encoding, its
telemetry (the stage histogram, the counters) and ``produce()`` are all inside the clock.
The baseline is raw ``Producer.produce()`` of the very bytes (and keys and headers) the
SDK path produced (captured from a separate SDK whose produce is replaced by a recorder),
by a producer built from the SDK's own settings (``emitter.producer_settings``: same
idempotence, acks, linger, compression, buffer, delivery-report settings).

Method: one raw producer and one SDK are created and *warmed* (connection, metadata and
the idempotent producer id are acquired before any clock starts). Then ``--blocks`` pairs
of blocks of ``--events`` requests each run back to back, alternating which side goes
first; each block is its loop plus ``flush()``. Each pair gives one ratio (SDK events/s
over raw events/s measured seconds apart), and the figure is the median of the pair
ratios. The time each request costs its caller is taken per call over all SDK blocks
(p50/p99/p999; same-run baseline: the raw ``produce()`` call). ``close()`` runs after
the clocks stop. The call arguments (fixtures, built up front) are frozen out of the
cyclic collector (``gc.freeze()``) so that a collection cannot traverse them during one
side's block only; nothing the SDK allocates is frozen.

    .venv/bin/python benchmarks/bench_sdk.py [--events 20000] [--blocks 10] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from modelguard.adapters.kafka import KafkaConnection, delete_topics, ensure_topics
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.predictions import PredictionLogged
from modelguard.contracts.topics import Topics
from modelguard.sdk import EventSDK
from modelguard.sdk.emitter import producer_settings

TARGET_RATIO = 0.5
TARGET_P99_US = 20.0
HEADERS: list[tuple[str, str | bytes | None]] = [
    ("event_type", PredictionLogged.schema_name.encode())
]
MAX_BUFFER = 1_000_000


def make_args(n: int) -> list[dict[str, Any]]:
    """A model server's requests: what it passes (no prediction id, no event time: the
    SDK makes those, as it does for a user who leaves them out)."""
    out = []
    for i in range(n):
        out.append(
            {
                "model": "fraud",
                "version": "v2" if i % 10 == 0 else "v1",
                "unit_id": f"user-{i % 5000}",
                "features": {f"f{j}": (i * 7 + j) % 1000 / 10.0 for j in range(10)},
                "prediction": i % 2,
                "probabilities": {"0": 0.25, "1": 0.75},
            }
        )
    return out


def request(sdk: EventSDK, a: dict[str, Any]) -> None:
    """One request's SDK work, as documented for users (the model's work excluded)."""
    with sdk.timer(a["model"], a["version"]) as timer, timer.stage("inference"):
        pass
    sdk.emit_prediction(
        model=a["model"],
        version=a["version"],
        unit_id=a["unit_id"],
        features=a["features"],
        prediction=a["prediction"],
        probabilities=a["probabilities"],
        timer=timer,
    )


def captured_payloads(
    connection: KafkaConnection, topics: Topics, args: list[dict[str, Any]]
) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` pairs the SDK path produces for ``args`` (same sizes, same
    bytes), recorded by an SDK whose ``produce`` is replaced; nothing is sent."""
    sent: list[tuple[bytes, bytes]] = []

    def record(topic: str, value: bytes, key: bytes, **kwargs: Any) -> None:
        sent.append((key, value))

    capture = EventSDK(connection, topics=topics)
    capture._produce = record  # type: ignore[assignment]  # the recorder (bench only)
    try:
        for a in args:
            request(capture, a)
    finally:
        capture.close(1)
    assert len(sent) == len(args)
    return sent


def raw_block(
    producer: Producer, topic: str, payloads: list[tuple[bytes, bytes]]
) -> tuple[float, list[int], float]:
    """Events/s of raw ``produce()`` + ``flush()``, the per-call cost in ns, and the
    process CPU seconds (all threads, librdkafka's included) per event."""
    produce, clock = producer.produce, time.perf_counter_ns
    costs = [0] * len(payloads)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i, (key, value) in enumerate(payloads):
        c0 = clock()
        produce(topic, value, key, headers=HEADERS)
        costs[i] = clock() - c0
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / len(payloads)
    assert left == 0, f"raw producer left {left} undelivered"
    return len(payloads) / elapsed, costs, cpu


def sdk_block(sdk: EventSDK, args: list[dict[str, Any]]) -> tuple[float, list[int], float]:
    """Events/s of the SDK request path + ``flush()``, the per-request cost in ns, and
    the process CPU seconds per event."""
    clock = time.perf_counter_ns
    emit, timer = sdk.emit_prediction, sdk.timer
    costs = [0] * len(args)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i, a in enumerate(args):
        c0 = clock()
        # request(sdk, a), inlined as a user writes it (no extra call in the clock)
        with timer(a["model"], a["version"]) as t, t.stage("inference"):
            pass
        emit(
            model=a["model"],
            version=a["version"],
            unit_id=a["unit_id"],
            features=a["features"],
            prediction=a["prediction"],
            probabilities=a["probabilities"],
            timer=t,
        )
        costs[i] = clock() - c0
    left = sdk.flush(60)
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / len(args)
    assert left == 0 and not sdk.dropped and not sdk.delivery_failures
    return len(args) / elapsed, costs, cpu


def pct_us(values: list[int], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))] / 1000.0, 2)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per block")
    parser.add_argument("--blocks", type=int, default=10, help="pairs of blocks (raw, sdk)")
    parser.add_argument("--quick", action="store_true", help="6 pairs of 10k events")
    opts = parser.parse_args()
    if opts.quick:
        opts.events, opts.blocks = 10_000, 6
    configure_logging("WARNING")  # logs to stderr; stdout is the JSON result
    load_before = load()
    settings = CommonSettings()
    connection = settings.kafka_connection()
    topics = Topics(prefix=f"bench-sdk-{uuid.uuid4().hex[:8]}")
    raw_topic = f"{topics.prefix}.raw"
    ensure_topics(connection, [topics.predictions, raw_topic], partitions=3)
    args = make_args(opts.events)
    payloads = captured_payloads(connection, topics, args)
    gc.collect()
    gc.freeze()  # the fixtures are not part of either side's work
    producer = Producer(
        producer_settings(connection, max_buffer=MAX_BUFFER, message_timeout_s=300.0)
    )
    sdk = EventSDK(connection, topics=topics, max_buffer=MAX_BUFFER, message_timeout_s=300.0)
    ratios: list[float] = []
    raw_rates: list[float] = []
    sdk_rates: list[float] = []
    sdk_costs: list[int] = []
    raw_costs: list[int] = []
    cpu_ratios: list[float] = []
    try:
        # warm-up: connections, metadata, idempotent producer ids; no clock runs
        raw_block(producer, raw_topic, payloads[:100])
        sdk_block(sdk, args[:100])
        for b in range(opts.blocks):
            if b % 2 == 0:
                raw_rate, rc, raw_cpu = raw_block(producer, raw_topic, payloads)
                sdk_rate, sc, sdk_cpu = sdk_block(sdk, args)
            else:
                sdk_rate, sc, sdk_cpu = sdk_block(sdk, args)
                raw_rate, rc, raw_cpu = raw_block(producer, raw_topic, payloads)
            raw_rates.append(raw_rate)
            sdk_rates.append(sdk_rate)
            ratios.append(sdk_rate / raw_rate)
            cpu_ratios.append(raw_cpu / max(sdk_cpu, 1e-12))
            sdk_costs += sc
            raw_costs += rc
    finally:
        sdk.close(60)
        producer.flush(10)
        delete_topics(connection, [topics.predictions, raw_topic])
    ratio = statistics.median(ratios)
    p99 = pct_us(sdk_costs, 0.99)
    result = {
        "benchmark": "sdk",
        "events_per_block": opts.events,
        "blocks": opts.blocks,
        "load_before": load_before,
        "load_after": load(),
        "figures": {
            "sdk_vs_raw_produce": {
                "label": "SDK events/s (request path) vs raw produce() of the same bytes",
                "value": round(ratio, 3),
                "unit": "ratio",
                "baseline": (
                    "raw produce() of the same bytes + flush, same producer settings, paired blocks"
                ),
                "baseline_value": round(statistics.median(raw_rates)),
                "baseline_unit": "events/s",
                "subject_value": round(statistics.median(sdk_rates)),
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "higher_is_better": True,
                "pass": ratio >= TARGET_RATIO,
            },
            "sdk_emit_p99_us": {
                "label": "SDK time per request (timer, stage, emit_prediction), p99",
                "value": p99,
                "unit": "us",
                "baseline": "raw produce() call, p99, same run",
                "baseline_value": pct_us(raw_costs, 0.99),
                "baseline_unit": "us",
                "ratio": round(p99 / max(pct_us(raw_costs, 0.99), 1e-9), 2),
                "target": TARGET_P99_US,
                "higher_is_better": False,
                "pass": p99 <= TARGET_P99_US,
            },
        },
        "payload_bytes_median": statistics.median(len(v) for _, v in payloads),
        "emit_caller_us": {
            "p50": pct_us(sdk_costs, 0.5),
            "p99": p99,
            "p999": pct_us(sdk_costs, 0.999),
        },
        "raw_produce_call_us": {
            "p50": pct_us(raw_costs, 0.5),
            "p99": pct_us(raw_costs, 0.99),
            "p999": pct_us(raw_costs, 0.999),
        },
        # events per process-CPU-second, SDK over raw (librdkafka threads included; the
        # broker's CPU is not): what the wall-clock ratio tends to when the cores are
        # saturated by other processes (ADR 0013)
        "cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
        "pair_ratios": [round(r, 3) for r in ratios],
        "raw_events_per_s": [round(r) for r in raw_rates],
        "sdk_events_per_s": [round(r) for r in sdk_rates],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
