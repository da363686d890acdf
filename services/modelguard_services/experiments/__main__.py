"""``python -m modelguard_services.experiments``: run the experiments processor."""

from __future__ import annotations

import argparse
import signal
import threading

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard_services.experiments.app import ExperimentsService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-experiments", description=__doc__)
    parser.add_argument("--analysis-interval", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bandit's sampler")
    args = parser.parse_args(argv)
    if args.analysis_interval <= 0:
        parser.error(f"--analysis-interval must be > 0, got {args.analysis_interval}")
    settings = CommonSettings()
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)
    structlog.get_logger("modelguard.experiments").info("metrics_listening", url=server.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        ExperimentsService(
            settings, registry, analysis_interval=args.analysis_interval, seed=args.seed
        ).run(stop, idle_exit_seconds=args.idle_exit)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
