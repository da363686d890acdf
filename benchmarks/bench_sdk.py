"""SDK throughput and caller overhead against raw confluent-kafka, on the real broker.

Prints one JSON object (``figures``: each with its same-run baseline, ratio, target and
pass/fail, the shape ``benchmarks/summary.py`` reads). Baseline: raw
``Producer.produce()`` of the pre-serialised bytes the SDK would send, same broker,
same producer settings, same headers.

Method (ADR 0013): one raw producer and one SDK are created and *warmed* (connection,
metadata and the idempotent producer id are acquired before any clock starts: that
alone took 0.5 s on this machine, as long as a whole measured block). Then ``--blocks``
pairs of blocks of ``--events`` events each run back to back, alternating which side
goes first; each block is its produce loop plus ``flush()``. Each pair gives one ratio
(SDK events/s over raw events/s measured seconds apart), and the figure is the median
of the pair ratios, which cancels the slow drifts of load on a shared machine. The
time each ``emit_prediction`` call costs its caller is taken per call over all SDK
blocks (p50/p99/p999; same-run baseline: the raw ``produce()`` call). ``close()`` is
shutdown, not per-event cost, and runs after the clocks stop, as the raw producer's
destruction does. The fixtures (all call arguments, built up front) are frozen out of
the cyclic collector (``gc.freeze()``) so that a full collection does not traverse
them during one side's block only.

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
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from modelguard.adapters.kafka import delete_topics, ensure_topics, make_producer
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.topics import Topics
from modelguard.sdk import EventSDK, PredictionEncoder

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_RATIO = 0.5
TARGET_P99_US = 20.0
HEADERS: list[tuple[str, str | bytes | None]] = [("event_type", b"prediction_logged")]


def make_args(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "model": "fraud",
                "version": "v2" if i % 10 == 0 else "v1",
                "prediction_id": f"p-{i}",
                "unit_id": f"user-{i % 5000}",
                "features": {f"f{j}": (i * 7 + j) % 1000 / 10.0 for j in range(10)},
                "prediction": i % 2,
                "probabilities": {"0": 0.25, "1": 0.75},
                "latency_ms": 3.5,
                "event_time": T0 + timedelta(milliseconds=i),
            }
        )
    return out


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
    """Events/s of ``emit_prediction`` + ``flush()``, the per-call cost in ns, and the
    process CPU seconds per event."""
    emit, clock = sdk.emit_prediction, time.perf_counter_ns
    costs = [0] * len(args)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i, a in enumerate(args):
        c0 = clock()
        emit(**a)
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
    enc = PredictionEncoder()
    payloads = [enc.encode(**a) for a in args]
    gc.collect()
    gc.freeze()  # the fixtures are not part of either side's work
    producer = make_producer(connection, **{"queue.buffering.max.messages": 1_000_000})
    sdk = EventSDK(
        settings.kafka_bootstrap_servers,
        topics=topics,
        max_buffer=1_000_000,
        producer_config={k: v for k, v in connection.items() if k != "bootstrap.servers"},
    )
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
                "label": "SDK events/s vs raw produce() of pre-serialised bytes",
                "value": round(ratio, 3),
                "unit": "ratio",
                "baseline": "raw produce() + flush, same broker/settings, paired blocks",
                "baseline_value": round(statistics.median(raw_rates)),
                "baseline_unit": "events/s",
                "subject_value": round(statistics.median(sdk_rates)),
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "higher_is_better": True,
                "pass": ratio >= TARGET_RATIO,
            },
            "sdk_emit_p99_us": {
                "label": "SDK time per emit_prediction call, p99",
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
