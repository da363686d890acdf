"""SDK throughput and caller overhead against raw confluent-kafka, on the real broker.

Prints one JSON object. Baseline (same run, same broker, same producer settings): raw
``Producer.produce()`` of the pre-serialized bytes the SDK would send. Figures:
events/s for both (produce loop + final flush), their ratio (target >= 0.5), and the
time each ``emit_prediction`` call costs its caller (target p99 <= 20 us). Runs
alternate (raw, sdk, raw, sdk, ...) and the best of each is kept, which damps noise
from other processes on a shared machine.

    .venv/bin/python benchmarks/bench_sdk.py [--events 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from modelguard.adapters.kafka import delete_topics, ensure_topics, make_producer
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.topics import Topics
from modelguard.sdk import EventSDK, PredictionEncoder

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_args(n: int) -> list[dict[str, object]]:
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


def run_raw(bootstrap: str, topic: str, args: list[dict[str, object]]) -> float:
    enc = PredictionEncoder()
    payloads = [_encode(enc, a) for a in args]
    producer = make_producer(bootstrap, **{"queue.buffering.max.messages": 1_000_000})
    headers: list[tuple[str, str | bytes | None]] = [("event_type", b"prediction_logged")]
    t0 = time.perf_counter()
    for i, (key, value) in enumerate(payloads):
        producer.produce(topic, value, key, headers=headers)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - t0
    assert left == 0, f"raw producer left {left} undelivered"
    return len(payloads) / elapsed


def _encode(enc: PredictionEncoder, a: dict[str, object]) -> tuple[bytes, bytes]:
    return enc.encode(**a)  # type: ignore[arg-type]


def run_sdk(
    bootstrap: str, topics: Topics, args: list[dict[str, object]]
) -> tuple[float, list[int]]:
    sdk = EventSDK(bootstrap, topics=topics, max_buffer=1_000_000)
    emit = sdk.emit_prediction
    clock = time.perf_counter_ns
    costs = [0] * len(args)
    t0 = time.perf_counter()
    for i, a in enumerate(args):
        c0 = clock()
        emit(**a)  # type: ignore[arg-type]
        costs[i] = clock() - c0
    left = sdk.close(60)
    elapsed = time.perf_counter() - t0
    assert left == 0 and not sdk.dropped and not sdk.delivery_failures
    return len(args) / elapsed, costs


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    configure_logging("WARNING")  # logs to stderr; stdout is the JSON result
    bootstrap = CommonSettings().kafka_bootstrap_servers
    topics = Topics(prefix=f"bench-sdk-{uuid.uuid4().hex[:8]}")
    raw_topic = f"{topics.prefix}.raw"
    ensure_topics(bootstrap, [topics.predictions, raw_topic], partitions=3)
    args = make_args(opts.events)
    raw_rates, sdk_rates, all_costs = [], [], []
    try:
        for _ in range(opts.rounds):
            raw_rates.append(run_raw(bootstrap, raw_topic, args))
            rate, costs = run_sdk(bootstrap, topics, args)
            sdk_rates.append(rate)
            all_costs.append(costs)
    finally:
        delete_topics(bootstrap, [topics.predictions, raw_topic])
    best = max(range(opts.rounds), key=lambda r: sdk_rates[r])
    costs = all_costs[best]
    result = {
        "benchmark": "sdk",
        "events": opts.events,
        "rounds": opts.rounds,
        "baseline_raw_produce_events_per_s": round(max(raw_rates)),
        "sdk_events_per_s": round(max(sdk_rates)),
        "ratio_sdk_to_raw": round(max(sdk_rates) / max(raw_rates), 3),
        "target_ratio": 0.5,
        "emit_caller_us": {
            "p50": pct(costs, 0.5),
            "p99": pct(costs, 0.99),
            "p999": pct(costs, 0.999),
        },
        "target_p99_us": 20.0,
        "all_raw_events_per_s": [round(r) for r in raw_rates],
        "all_sdk_events_per_s": [round(r) for r in sdk_rates],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
