"""Routing client: ``version_for`` from the cache, and change propagation, on real Redis.

Prints one JSON object. Figures:
- ``version_for_us``: median per call (target <= 2 us) for 2 and 3 versions, for units
  already routed by the cached table (the request path: repeat visitors, one dict
  lookup) and for units never seen before (first call: one keyed hash); same-run
  baselines: a dict lookup and a bare keyed BLAKE2b digest of the unit id (the hash
  any sticky assignment needs). All four are interleaved round by round.
- ``propagation_ms``: from the start of a compare-and-set write to the moment a started
  client has the new revision (target p99 < 100 ms); same-run baseline: a raw Redis
  PUBLISH -> subscriber receive.

    .venv/bin/python benchmarks/bench_router.py [--changes 200] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from hashlib import blake2b

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.routing import RoutingClient, RoutingTableStore

UNITS = [f"user-{i}" for i in range(10_000)]


def per_call_us(
    fns: dict[str, tuple[Callable[[str], object], Callable[[], list[str]]]],
    rounds: int = 4,
    batches: int = 5,
) -> dict[str, float]:
    """Per-call time of each ``fn(unit)`` over the units its ``units()`` gives for each
    batch: median (and best) over batches, the functions interleaved round by round so
    machine load hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, units) in fns.items():
            for _ in range(batches):
                times[name] += timeit.repeat(
                    "for u in units: fn(u)",
                    globals={"fn": fn, "units": units()},
                    number=1,
                    repeat=1,
                )
    n = len(UNITS)
    return {
        **{name: statistics.median(t) / n * 1e6 for name, t in times.items()},
        **{f"{name}_best": min(t) / n * 1e6 for name, t in times.items()},
    }


def quantiles_ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    q = lambda p: round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 3)  # noqa: E731
    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(s[-1] * 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 changes, 2 rounds")
    opts = parser.parse_args()
    rounds = 2 if opts.quick else 4
    if opts.quick:
        opts.changes = 50
    load_before = [round(x, 2) for x in os.getloadavg()]
    configure_logging("WARNING")  # logs to stderr; stdout is the JSON result
    settings = CommonSettings()
    keys = RedisKeys(prefix=f"bench-router-{uuid.uuid4().hex[:8]}")
    redis = make_redis(settings.redis_connection())
    store = RoutingTableStore(redis, keys)
    store.write("two", {"v1": 0.9, "v2": 0.1}, expected_revision=0, actor="bench")
    store.write("three", {"v1": 0.6, "v2": 0.3, "v3": 0.1}, expected_revision=0, actor="bench")
    client = RoutingClient(
        make_redis(settings.redis_connection()), keys, models=["two", "three"]
    ).start()
    try:
        deadline = time.monotonic() + 10
        while not client.connected and time.monotonic() < deadline:
            time.sleep(0.01)

        key = blake2b(b"salt", digest_size=32).digest()
        cache = {u: "v1" for u in UNITS}
        fresh = (f"new-{i}" for i in itertools.count())

        def new_units() -> list[str]:
            return [next(fresh) for _ in UNITS]

        def seen() -> list[str]:
            return UNITS

        for u in UNITS:  # these units have been routed before
            client.version_for("two", u)
            client.version_for("three", u)
        t = per_call_us(
            {
                "two": (lambda u: client.version_for("two", u), seen),
                "three": (lambda u: client.version_for("three", u), seen),
                "two_first": (lambda u: client.version_for("two", u), new_units),
                "three_first": (lambda u: client.version_for("three", u), new_units),
                "blake2b": (
                    lambda u: blake2b(u.encode(), digest_size=8, key=key).digest(),
                    seen,
                ),
                "dict": (cache.__getitem__, seen),
            },
            rounds=rounds,
        )

        # propagation of a CAS write to the started client
        lags: list[float] = []
        rev = client.revision("two")
        for i in range(opts.changes):
            w2 = 0.1 + (i % 5) / 10
            t0 = time.perf_counter()
            store.write("two", {"v1": 1 - w2, "v2": w2}, expected_revision=rev, actor="bench")
            rev += 1
            if not client.wait_for_revision("two", rev, timeout=5):
                raise RuntimeError(f"revision {rev} not seen within 5 s")
            lags.append(time.perf_counter() - t0)
            time.sleep(0.002)

        # baseline: raw publish -> receive on the same server
        pubsub = make_redis(settings.redis_connection()).pubsub(ignore_subscribe_messages=True)
        channel = f"{keys.prefix}:bench"
        pubsub.subscribe(channel)
        raw: list[float] = []
        for _ in range(opts.changes):
            t0 = time.perf_counter()
            redis.publish(channel, b"x")
            while pubsub.get_message(timeout=1.0) is None:
                pass
            raw.append(time.perf_counter() - t0)
        pubsub.close()
    finally:
        client.close()
        for k in redis.scan_iter(f"{keys.prefix}:*"):
            redis.delete(k)

    two, first, prop_p99 = t["two"], t["two_first"], quantiles_ms(lags)["p99"]
    result = {
        "benchmark": "router",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "figures": {
            "version_for_us": {
                "label": "RoutingClient.version_for median, unit routed before (2 versions)",
                "value": round(two, 3),
                "unit": "us",
                "baseline": "dict lookup, same run",
                "baseline_value": round(t["dict"], 3),
                "ratio": round(two / t["dict"], 2),
                "target": 2.0,
                "higher_is_better": False,
                "pass": two <= 2.0,
            },
            "version_for_first_call_us": {
                "label": "version_for median, unit never seen (one keyed hash, 2 versions)",
                "value": round(first, 3),
                "unit": "us",
                "baseline": "bare keyed BLAKE2b digest of the unit id, same run",
                "baseline_value": round(t["blake2b"], 3),
                "ratio": round(first / t["blake2b"], 2),
                "target": None,
                "higher_is_better": False,
                "pass": None,
            },
            "routing_propagation_p99_ms": {
                "label": "routing table write -> client has it, p99",
                "value": prop_p99,
                "unit": "ms",
                "baseline": "raw Redis PUBLISH -> subscriber, p99, same run",
                "baseline_value": quantiles_ms(raw)["p99"],
                "ratio": round(prop_p99 / max(quantiles_ms(raw)["p99"], 1e-3), 2),
                "target": 100.0,
                "higher_is_better": False,
                "pass": prop_p99 <= 100.0,
            },
        },
        "version_for_us": {
            "two_versions_median": round(t["two"], 3),
            "three_versions_median": round(t["three"], 3),
            "two_versions_best_batch": round(t["two_best"], 3),
            "two_versions_first_call_median": round(t["two_first"], 3),
            "three_versions_first_call_median": round(t["three_first"], 3),
            "target_median": 2.0,
            "baseline_blake2b_digest": round(t["blake2b"], 3),
            "baseline_dict_lookup": round(t["dict"], 3),
            "ratio_first_call_to_blake2b": round(t["two_first"] / t["blake2b"], 2),
        },
        "propagation_ms": {
            **quantiles_ms(lags),
            "changes": len(lags),
            "target_p99": 100.0,
            "baseline_raw_pubsub": quantiles_ms(raw),
        },
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
