"""``python -m modelguard_services.demo``: the end-to-end demo (see the README).

Starts the local stack (real Kafka, Redis, Prometheus, Alertmanager), runs the services
in this process, drives traffic, prints a timeline, and stops what it started.
"""

from __future__ import annotations

import argparse

from modelguard.adapters.logging import configure_logging
from modelguard_services.demo.slice_demo import run_slice_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-demo", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave the local servers running afterwards"
    )
    parser.add_argument("--events", type=int, default=500, help="valid predictions to send")
    args = parser.parse_args(argv)
    if args.events <= 0:
        parser.error(f"--events must be positive, got {args.events}")
    configure_logging("WARNING")
    return run_slice_demo(events=args.events, keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
