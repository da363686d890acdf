"""Data drift under service conditions: the drift service's processor, its defaults and a
reference *learned from warm-up traffic* (as the service does for a version without
one), on numeric and categorical streams.

* Nulls: false-alarm rate per stream (a stream "alarms" when any ``drift_detected``
  data signal, window test or sequential alarm, is published for any feature; quality
  signals are counted separately), with its 95 % Wilson interval. Target: <= 5 %.
* Shifts on one feature of the model (the others stay null): numeric mean +0.25 /
  +0.5 / +1 sigma and standard deviation x1.5, categorical frequency shifts of PSI
  ~0.1 and ~0.25 and a new category carrying 2 % / 10 % of rows. Detection rate within
  the stream and delay (events of the model after the change until the first
  ``drift_detected`` signal on that feature, sequential or window).

Models: *numeric* (5 features: normal, exponential, log-normal, Poisson counts,
uniform) and *categorical* (3 features: 3 even categories, 10 Zipf categories, 50
categories with a rare tail). Events go to ``DriftProcessor.handle_batch`` in batches of
50 (the service polls up to 1,000; smaller batches only sharpen the delay figures).

    .venv/bin/python benchmarks/bench_data_drift.py [--streams 60] [--seed 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from _stats import wilson
from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState, Observation

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 50
CONFIG = DriftConfig()  # the service's defaults: warm-up 2,000, windows of 5,000

Sampler = Callable[[np.random.Generator, int], list[object]]


def _floats(a: np.ndarray) -> list[object]:
    return [float(v) for v in a]


def _ints(a: np.ndarray) -> list[object]:
    return [int(v) for v in a]


ZIPF10 = (1.0 / np.arange(1, 11)) / (1.0 / np.arange(1, 11)).sum()
TAIL50 = np.r_[np.full(10, 0.08), np.full(40, 0.005)]
NUMERIC: dict[str, Sampler] = {
    "normal": lambda r, n: _floats(r.normal(0, 1, n)),
    "exponential": lambda r, n: _floats(r.exponential(1, n)),
    "lognormal": lambda r, n: _floats(r.lognormal(0, 1, n)),
    "poisson": lambda r, n: _ints(r.poisson(3, n)),
    "uniform": lambda r, n: _floats(r.uniform(0, 1, n)),
}


def _cats(p: np.ndarray, prefix: str) -> Sampler:
    return lambda r, n: [f"{prefix}{i}" for i in r.choice(p.size, p=p, size=n)]


CATEGORICAL: dict[str, Sampler] = {
    "even3": _cats(np.full(3, 1 / 3), "e"),
    "zipf10": _cats(ZIPF10, "z"),
    "tail50": _cats(TAIL50 / TAIL50.sum(), "t"),
}


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def _shifted_even3(target: float) -> np.ndarray:
    """Shares of even3 after a shift of PSI ``target`` (mass moved to the first)."""
    lo, hi = 0.0, 2 / 3
    for _ in range(60):
        m = (lo + hi) / 2
        q = np.array([1 / 3 + m, 1 / 3 - m / 2, 1 / 3 - m / 2])
        lo, hi = (m, hi) if _psi(np.full(3, 1 / 3), q) < target else (lo, m)
    return np.array([1 / 3 + lo, 1 / 3 - lo / 2, 1 / 3 - lo / 2])


def _new_category(base: Sampler, share: float) -> Sampler:
    def f(r: np.random.Generator, n: int) -> list[object]:
        out = base(r, n)
        for i in np.flatnonzero(r.random(n) < share):
            out[i] = "brand-new"
        return out

    return f


SHIFTS: dict[str, tuple[str, str, Sampler]] = {
    "mean_+0.25_sigma": ("numeric", "normal", lambda r, n: _floats(r.normal(0.25, 1, n))),
    "mean_+0.5_sigma": ("numeric", "normal", lambda r, n: _floats(r.normal(0.5, 1, n))),
    "mean_+1_sigma": ("numeric", "normal", lambda r, n: _floats(r.normal(1.0, 1, n))),
    "std_x1.5": ("numeric", "normal", lambda r, n: _floats(r.normal(0, 1.5, n))),
    "frequency_psi_0.1": ("categorical", "even3", _cats(_shifted_even3(0.1), "e")),
    "frequency_psi_0.25": ("categorical", "even3", _cats(_shifted_even3(0.25), "e")),
    "new_category_2pct": ("categorical", "zipf10", _new_category(CATEGORICAL["zipf10"], 0.02)),
    "new_category_10pct": ("categorical", "zipf10", _new_category(CATEGORICAL["zipf10"], 0.10)),
}


def run_stream(
    columns: dict[str, list[object]], n: int, change: int | None, feature: str | None
) -> dict[str, Any]:
    """Feed one model's stream; report the first detected data signal (any feature, and
    the watched one after ``change``) and detected quality signals."""
    proc = DriftProcessor(CONFIG)
    state = DriftState()
    names = list(columns)
    first_any: int | None = None
    first_feature: int | None = None
    quality = 0
    tests: dict[str, int] = {}
    for k in range(0, n, BATCH):
        batch = [
            Observation(
                "m",
                "v",
                T0 + timedelta(milliseconds=i),
                {c: columns[c][i] for c in names},
                None,
                None,
                f"p{i}",
            )
            for i in range(k, min(k + BATCH, n))
        ]
        end = min(k + BATCH, n)
        for o in proc.handle_batch(batch, state):
            if not isinstance(o, DriftSignal) or not o.drift_detected:
                continue
            if o.kind == "quality":
                quality += 1
                tests[f"quality:{o.test}"] = tests.get(f"quality:{o.test}", 0) + 1
                continue
            if o.kind != "data":
                continue
            key = f"{o.test}:{o.feature}"
            tests[key] = tests.get(key, 0) + 1
            if first_any is None:
                first_any = end
            if (
                feature is not None
                and change is not None
                and o.feature == feature
                and end > change
                and first_feature is None
            ):
                first_feature = end - change
    for o in proc.flush(state):
        if isinstance(o, DriftSignal) and o.drift_detected and o.kind == "data":
            key = f"{o.test}:{o.feature}"
            tests[key] = tests.get(key, 0) + 1
            if first_any is None:
                first_any = n
            if feature is not None and change is not None and o.feature == feature:
                first_feature = first_feature if first_feature is not None else n - change
    return {"first_any": first_any, "delay": first_feature, "quality": quality, "tests": tests}


def model_columns(kind: str, rng: np.random.Generator, n: int) -> dict[str, list[object]]:
    family = NUMERIC if kind == "numeric" else CATEGORICAL
    return {name: sample(rng, n) for name, sample in family.items()}


def nulls(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    n = CONFIG.warmup_events + args.null_events
    out: dict[str, Any] = {}
    for kind in ("numeric", "categorical"):
        alarms = quality = 0
        tests: dict[str, int] = {}
        for _ in range(args.streams):
            r = run_stream(model_columns(kind, rng, n), n, None, None)
            alarms += r["first_any"] is not None
            quality += r["quality"] > 0
            for t, c in r["tests"].items():
                tests[t] = tests.get(t, 0) + c
        out[kind] = {
            "streams": args.streams,
            "events_after_warmup": args.null_events,
            "data_false_alarm_streams": alarms,
            "data_false_alarm_rate": round(alarms / args.streams, 4),
            "data_false_alarm_ci95": wilson(alarms, args.streams),
            "quality_false_alarm_streams": quality,
            "quality_false_alarm_rate": round(quality / args.streams, 4),
            "quality_false_alarm_ci95": wilson(quality, args.streams),
            "signals_by_test": tests,
        }
    return out


def shifts(args: argparse.Namespace, rng: np.random.Generator, only: set[str]) -> dict[str, Any]:
    pre = CONFIG.warmup_events + args.pre_events
    n = pre + args.post_events
    out: dict[str, Any] = {}
    for name, (kind, feature, sampler) in SHIFTS.items():
        if only and name not in only:
            continue
        delays: list[int] = []
        early = 0
        for _ in range(args.shift_streams):
            cols = model_columns(kind, rng, n)
            cols[feature] = cols[feature][:pre] + sampler(rng, n - pre)
            r = run_stream(cols, n, pre, feature)
            early += r["first_any"] is not None and r["first_any"] <= pre
            if r["delay"] is not None:
                delays.append(int(r["delay"]))
        m = args.shift_streams
        out[name] = {
            "model": kind,
            "feature": feature,
            "streams": m,
            "events_after_change": args.post_events,
            "detected": len(delays),
            "detection_rate": round(len(delays) / m, 4),
            "detection_ci95": wilson(len(delays), m),
            "median_delay": float(np.median(delays)) if delays else None,
            "p90_delay": float(np.percentile(delays, 90)) if delays else None,
            "false_alarm_before_change": early,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--streams", type=int, default=60, help="null streams per model")
    ap.add_argument("--shift-streams", type=int, default=30, help="streams per shift")
    ap.add_argument("--null-events", type=int, default=20_000, help="after the warm-up")
    ap.add_argument("--pre-events", type=int, default=2_000, help="null events before a shift")
    ap.add_argument("--post-events", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="small counts, under a minute")
    ap.add_argument("--only", default="", help="comma list: nulls and/or shift names")
    args = ap.parse_args(argv)
    if args.quick:
        args.streams, args.shift_streams, args.null_events, args.post_events = 6, 4, 8_000, 4_000
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    result = {
        "benchmark": "data_drift",
        "seed": args.seed,
        "config": {"warmup_events": CONFIG.warmup_events, "window_events": CONFIG.window_events},
    }
    only = {x for x in args.only.split(",") if x}
    if not only or "nulls" in only:
        result["nulls"] = nulls(args, rng)
    result["shifts"] = shifts(args, rng, only - {"nulls"})
    if "nulls" in result:
        result["figures"] = {
            f"null_false_alarm_rate_{kind}": {
                "label": f"data-drift false alarms per null stream, {kind} features, defaults",
                "value": row["data_false_alarm_rate"],
                "unit": "rate",
                "baseline": None,
                "baseline_value": None,
                "ratio": None,
                "target": 0.05,
                "higher_is_better": False,
                "pass": row["data_false_alarm_rate"] <= 0.05,
            }
            for kind, row in result["nulls"].items()
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
