"""``python -m modelguard_services.metrics``: run the metrics processor until SIGTERM."""

from __future__ import annotations

import argparse
import threading

from prometheus_client import CollectorRegistry

from modelguard_services.metrics.app import MetricsService, tune_gc
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.runtime import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-metrics", description=__doc__)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without messages",
    )
    args = parser.parse_args(argv)
    settings = MetricsSettings()

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        service = MetricsService(settings, registry)
        tune_gc()  # after start-up allocations: freeze them out of the collector's scans
        service.run(stop, idle_exit_seconds=args.idle_exit)

    return serve("metrics", settings, run)


if __name__ == "__main__":
    raise SystemExit(main())
