"""Run every benchmark, one at a time, and write one summary of all figures.

Each ``benchmarks/bench_*.py`` prints one JSON object whose ``figures`` map holds its
headline figures, each with its same-run baseline, ratio, target and pass/fail::

    "figures": {"<name>": {"label": ..., "value": 0.61, "unit": "ratio",
                           "baseline": "<what>", "baseline_value": 131000,
                           "ratio": 0.61, "target": 0.5, "higher_is_better": true,
                           "pass": true}}

This script runs the benchmarks sequentially (never two at once: they share two cores),
``--runs`` times, and writes ``.run/bench/summary.json``: per figure the median over the
runs of its value, baseline and ratio, every run's value, pass/fail of the median
against the target, and the load average around each benchmark (the machine may be
shared; paired ratios are the figures to trust, ADR 0013). It prints a table.

    .venv/bin/python benchmarks/summary.py [--quick] [--runs 3] [--only sdk,router]
    .venv/bin/python benchmarks/summary.py --markdown [--input .run/bench/summary.json]

``--quick`` passes ``--quick`` to every benchmark (smaller sizes, under 3 minutes in all);
``--markdown`` prints the README's performance section from a written summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT_DIR = ROOT / ".run" / "bench"
#: name -> script; run in this order (the fast, decision-path ones first).
BENCHES = {
    "sdk": "bench_sdk.py",
    "router": "bench_router.py",
    "controller": "bench_controller.py",
    "metrics": "bench_metrics.py",
    "drift": "bench_drift.py",
    "experiments": "bench_experiments.py",
    "experiments_validity": "bench_experiments_validity.py",
    "concept_drift": "bench_concept_drift.py",
    "data_drift": "bench_data_drift.py",
}
#: The statistical suites (issue 12): calibration and power under service conditions, not
#: speed. A full ``./dev bench`` runs them; ``--quick`` leaves them out unless ``--only``
#: names them (their smoke sizes cannot show the calibration bounds anyway).
STATISTICS = ("experiments_validity", "concept_drift", "data_drift")
TIMEOUT_S = {"quick": 150, "full": 1800}


def bench_env() -> dict[str, str]:
    """The environment of each benchmark: the local stack's endpoints and its Redis admin
    user (the launcher's Redis has ACL users, ADR 0012), unless the caller set them."""
    from modelguard_devstack import Stack

    endpoints = Stack().endpoints
    found = {
        "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
    }
    found.update(endpoints.redis_env("admin"))
    return {**found, **os.environ}


def run_bench(name: str, quick: bool) -> dict[str, Any]:
    """One benchmark in a subprocess: its JSON (or the error), seconds and load."""
    cmd = [sys.executable, str(HERE / BENCHES[name]), *(["--quick"] if quick else [])]
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env=bench_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S["quick" if quick else "full"],
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out", "seconds": round(time.monotonic() - started, 1)}
    out: dict[str, Any] = {
        "seconds": round(time.monotonic() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    if done.returncode != 0:
        out["error"] = f"exit code {done.returncode}"
        out["stderr_tail"] = done.stderr[-1500:]
        return out
    try:
        out["result"] = json.loads(done.stdout)
    except json.JSONDecodeError:
        out["error"] = "stdout is not one JSON object"
        out["stdout_tail"] = done.stdout[-1500:]
    return out


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def _passes(value: float | None, target: float | None, higher_is_better: bool) -> bool | None:
    if target is None or value is None:
        return None
    return value >= target if higher_is_better else value <= target


def combine(runs: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per figure: medians over the runs, every run's value, pass/fail of the median."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for bench, outcome in run.items():
            figures = (outcome.get("result") or {}).get("figures", {})
            for name, fig in figures.items():
                row = rows.setdefault(
                    (bench, name),
                    {
                        "benchmark": bench,
                        "figure": name,
                        "label": fig.get("label", name),
                        "unit": fig.get("unit", ""),
                        "baseline": fig.get("baseline"),
                        "target": fig.get("target"),
                        "goal": fig.get("goal"),
                        "higher_is_better": bool(fig.get("higher_is_better", True)),
                        "values": [],
                        "baseline_values": [],
                        "ratios": [],
                        "loads": [],
                    },
                )
                row["values"].append(fig.get("value"))
                row["baseline_values"].append(fig.get("baseline_value"))
                row["ratios"].append(fig.get("ratio"))
                row["loads"].append(outcome.get("load_before", [None])[0])
    out = []
    for row in rows.values():
        value = _median(row["values"])
        row["value"] = value
        row["baseline_value"] = _median(row["baseline_values"])
        row["ratio"] = _median(row["ratios"])
        row["pass"] = _passes(value, row["target"], row["higher_is_better"])
        out.append(row)
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "PASS" if x else "FAIL"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return str(x)


def table(rows: list[dict[str, Any]]) -> str:
    header = ["benchmark", "figure", "value", "unit", "baseline", "ratio", "target", "", "load"]
    lines = [header]
    for r in rows:
        cmp = ">=" if r["higher_is_better"] else "<="
        lines.append(
            [
                r["benchmark"],
                r["figure"],
                _fmt(r["value"]),
                r["unit"],
                _fmt(r["baseline_value"]),
                _fmt(r["ratio"]),
                "-" if r["target"] is None else f"{cmp} {_fmt(r['target'])}",
                "info" if r["pass"] is None else _fmt(r["pass"]),
                ",".join(_fmt(x) for x in r["loads"]),
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def markdown(summary: dict[str, Any]) -> str:
    """The README's performance section, from a written summary."""
    rows = summary["figures"]
    runs = summary["runs"]
    loads = [x for r in rows for x in r["loads"] if x is not None]
    lines = [
        "## Performance",
        "",
        f"Measured with `./dev bench{' --quick' if summary['quick'] else ''}` on "
        f"{summary['started_at'][:10]} ({summary['machine']}); each figure is the median "
        f"of {runs} run{'s' if runs > 1 else ''}, each against a baseline measured in the "
        "same run on the same machine (paired, so that load from other processes cancels; "
        f"1-minute load average during the runs: {min(loads, default=0):.1f} to "
        f"{max(loads, default=0):.1f}). Method and caveats: `docs/adr/0013-*.md`.",
        "",
        "| figure | value | same-run baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cmp = "≥" if r["higher_is_better"] else "≤"
        target = "-" if r["target"] is None else f"{cmp} {_fmt(r['target'])}"
        verdict = "" if r["pass"] is None else ("met" if r["pass"] else "**not met**")
        unit = "µs" if r["unit"] == "us" else r["unit"]
        baseline = (
            "-" if r["baseline"] is None else f"{_fmt(r['baseline_value'])} ({r['baseline']})"
        )
        lines.append(
            f"| {r['label']} | {_fmt(r['value'])} {unit} | {baseline} | {_fmt(r['ratio'])} | "
            f"{target} | {verdict} |"
        )
    lines += [
        "",
        "Regenerate: `./dev bench` then `.venv/bin/python benchmarks/summary.py --markdown`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--runs", type=int, default=1, help="runs of the whole set (median)")
    ap.add_argument(
        "--only",
        default="",
        help=f"comma-separated names (default: all; --quick: all but {STATISTICS})",
    )
    ap.add_argument("--markdown", action="store_true", help="print the README section")
    ap.add_argument("--input", default=str(OUT_DIR / "summary.json"))
    ap.add_argument("--output", default=str(OUT_DIR / "summary.json"))
    args = ap.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown(json.loads(Path(args.input).read_text())))
        return 0
    names = [n for n in args.only.split(",") if n] or [
        n for n in BENCHES if not (args.quick and n in STATISTICS)
    ]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmarks {unknown}; known: {', '.join(BENCHES)}")
    started = datetime.now(UTC)
    runs: list[dict[str, dict[str, Any]]] = []
    for i in range(args.runs):
        run: dict[str, dict[str, Any]] = {}
        for name in names:
            sys.stderr.write(f"[bench] run {i + 1}/{args.runs}: {name} ...\n")
            run[name] = run_bench(name, args.quick)
            if "error" in run[name]:
                sys.stderr.write(f"[bench] {name}: {run[name]['error']}\n")
        runs.append(run)
    rows = combine(runs)
    errors = {
        f"{n}#{i + 1}": o["error"] for i, r in enumerate(runs) for n, o in r.items() if "error" in o
    }
    summary = {
        "started_at": started.isoformat(),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "quick": args.quick,
        "runs": args.runs,
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "figures": rows,
        "passed": sum(r["pass"] is True for r in rows),
        "failed": sum(r["pass"] is False for r in rows),
        "errors": errors,
        "details": runs,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    sys.stdout.write(table(rows) + "\n")
    sys.stdout.write(
        f"\ntargets met: {summary['passed']}, missed: {summary['failed']}"
        f"{f', {len(errors)} errors' if errors else ''} "
        f"({summary['seconds']} s; {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out})\n"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
