"""``python -m modelguard_services.metrics``: run the metrics processor until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.prometheus import MetricsServer
from modelguard_services.metrics.app import MetricsService, tune_gc
from modelguard_services.metrics.settings import MetricsSettings


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
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)
    structlog.get_logger("modelguard.metrics").info("metrics_listening", url=server.url)
    tune_gc()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        MetricsService(settings, registry).run(stop, idle_exit_seconds=args.idle_exit)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
