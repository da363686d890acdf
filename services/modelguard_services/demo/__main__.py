"""``python -m modelguard_services.demo``: the end-to-end demo (see the README).

Starts the local stack (real Kafka, Redis, Prometheus, Alertmanager) unless it is
running, then the metrics, drift and controller services as subprocesses, and a
simulated fraud model whose challenger ramps up, degrades and is rolled back while the
champion's input data drifts and raises an alert. Prints a timeline; exits 0 once the
loop has closed, 1 (with what is missing) if it has not within the deadline. Stops what
it started; servers that were already running are left running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelguard.adapters.logging import configure_logging
from modelguard_devstack import Stack, StackError
from modelguard_services.demo import ClosedLoop, LoopConfig, LoopResult
from modelguard_services.demo.narrator import Narrator


def _report(out: Narrator, r: LoopResult) -> None:
    say = out.say
    if r.table is not None:
        say(
            f"routing table now: {r.model} rev {r.table.revision} "
            + ", ".join(f"{v}={w:g}" for v, w in sorted(r.table.weights.items()))
            + f" (by {r.table.actor})"
        )
    say("timeline (seconds since traffic started):")
    rows: list[tuple[str, float | None]] = [
        (f"{r.challenger} degraded (incident injected)", r.t(r.degrade_at)),
        ("first degraded metric window out", r.t(r.bad_window_seen_at)),
        ("rollback decided (detected)", r.t(r.rollback.decided_at) if r.rollback else None),
        (
            "routing table changed",
            r.t(r.rollback_table.updated_at) if r.rollback_table else None,
        ),
        (f"{r.drift_feature} drifted (incident injected)", r.t(r.drift_at)),
        ("drift signal published", r.t(r.drift_signal_seen_at)),
        ("alert seen in Alertmanager", r.t(r.alert_seen_at)),
    ]
    for label, t in rows:
        say(f"  {label:<36} {'-' if t is None else f'{t:6.1f}s'}")
    took = r.degradation_to_routing_seconds
    if took is not None:
        say(f"degradation -> routing change: {took:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-demo", description=__doc__)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the local servers (and the demo's topics and keys) afterwards",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=LoopConfig.deadline_seconds,
        metavar="SECONDS",
        help="fail if the loop has not closed this long after traffic starts",
    )
    parser.add_argument("--scenario", type=Path, default=LoopConfig.scenario)
    parser.add_argument("--policies", type=Path, default=LoopConfig.policies)
    args = parser.parse_args(argv)
    if args.deadline <= 0:
        parser.error(f"--deadline must be positive, got {args.deadline}")
    configure_logging("WARNING")
    out = Narrator()
    stack = Stack()
    out.say("starting the local stack (Kafka KRaft, Redis, Prometheus, Alertmanager)...")
    # Only servers this run started are stopped at the end. ``up`` reports 0 s for a
    # server that was ready when it got the stack lock (judging by an earlier status()
    # would race with another session starting the stack at the same moment).
    started: list[str] = []
    try:
        for name, secs in stack.up().items():
            if secs > 0:
                started.append(name)
                out.say(f"  {name:<12} ready in {secs:5.2f}s")
            else:
                out.say(f"  {name:<12} already running")
    except StackError as exc:
        if started:  # (down() with no names stops every server)
            stack.down(started)
        sys.stderr.write(f"modelguard demo: the local stack did not start: {exc}\n")
        return 1

    def say(t: float | None, message: str) -> None:
        out.say(message if t is None else f"t={t:5.1f}s  {message}")

    result: LoopResult | None = None
    try:
        loop = ClosedLoop(
            stack.endpoints,
            LoopConfig(
                scenario=args.scenario,
                policies=args.policies,
                deadline_seconds=args.deadline,
                webhook_port=stack.cfg.webhook_port,
            ),
            say=say,
            keep_data=args.keep,
        )
        out.say(f"topics and keys prefixed {loop.prefix!r}; logs in {loop.log_dir}")
        result = loop.run()
        _report(out, result)
    except (OSError, ValueError, RuntimeError) as exc:
        sys.stderr.write(f"modelguard demo: {exc}\n")
    finally:
        if args.keep or not started:
            out.say("left the local servers running")
        else:  # only what this run started (down() with no names would stop all)
            out.say(f"stopped {', '.join(stack.down(started))}")
    if result is None:
        return 1
    if result.error is not None:
        sys.stderr.write(f"modelguard demo FAILED: {result.error}\n")
        return 1
    if not result.closed:
        sys.stderr.write(
            f"modelguard demo FAILED: the loop did not close within {args.deadline:g}s: "
            + "; ".join(result.missing)
            + f" (service logs: {loop.log_dir})\n"
        )
        return 1
    out.say("loop closed: bad challenger rolled back, champion drift alerted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
