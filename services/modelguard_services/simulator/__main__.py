"""``python -m modelguard_services.simulator --scenario FILE``: run a traffic scenario."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings
from modelguard.core.simulation import ScenarioError
from modelguard_services.runtime import load_settings
from modelguard_services.simulator.app import SimulatorService, load_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-simulator", description=__doc__)
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--seconds", type=float, default=None, help="simulated seconds to run")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second; 0 runs as fast as possible",
    )
    parser.add_argument("--rate", type=float, default=None, help="override rate_per_second")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario seed")
    parser.add_argument("--no-routing", action="store_true", help="do not use Redis routing")
    parser.add_argument(
        "--reset-routing", action="store_true", help="overwrite routing tables from the scenario"
    )
    args = parser.parse_args(argv)
    if args.speed < 0:
        parser.error(f"--speed must be >= 0, got {args.speed}")
    settings = load_settings(parser.prog, CommonSettings)
    configure_logging(settings.log_level)
    try:
        scenario = load_scenario(args.scenario)
        overrides = {
            k: v for k, v in (("rate_per_second", args.rate), ("seed", args.seed)) if v is not None
        }
        if overrides:
            scenario = scenario.model_validate({**scenario.model_dump(), **overrides})
    except (ScenarioError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    registry = CollectorRegistry()
    server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)
    structlog.get_logger("modelguard.simulator").info("metrics_listening", url=server.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with SimulatorService(
            settings,
            scenario,
            registry=registry,
            routing=not args.no_routing,
            reset_routing=args.reset_routing,
            speed=args.speed or None,
        ) as service:
            report = service.run(args.seconds, stop)
    finally:
        server.close()
    summary = dataclasses.asdict(report)
    summary["start_time"] = report.start_time.isoformat()
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    return 0 if report.undelivered == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
