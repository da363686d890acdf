"""``python -m modelguard_services.metrics``: run the metrics processor until SIGTERM."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from modelguard_services.metrics.app import MetricsService, tune_gc
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.runtime import load_settings, serve, service_parser


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("modelguard-metrics", __doc__)
    args = parser.parse_args(argv)
    settings = load_settings(parser.prog, MetricsSettings)

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        service = MetricsService(settings, registry)
        tune_gc()  # after start-up allocations: freeze them out of the collector's scans
        service.run(stop, idle_exit_seconds=args.idle_exit)

    return serve("metrics", settings, run)


if __name__ == "__main__":
    raise SystemExit(main())
