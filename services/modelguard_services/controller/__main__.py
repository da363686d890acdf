"""``python -m modelguard_services.controller``: the rollback controller.

Settings from ``MODELGUARD_*`` variables (see ``CommonSettings``); the policy file or
directory from ``--policies`` (default ``MODELGUARD_POLICIES`` or ``deploy/policies``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import ensure_topics
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.core.control import PolicyError, load_policies
from modelguard.routing import RoutingTableStore
from modelguard_services.controller.app import ControllerService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-controller", description=__doc__)
    parser.add_argument(
        "--policies",
        type=Path,
        default=Path(os.environ.get("MODELGUARD_POLICIES", "deploy/policies")),
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    parser.add_argument("--replica", default=None, help="replica name (default host-pid)")
    parser.add_argument("--lease-ttl", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    configure_logging(settings.log_level)
    try:
        policies = load_policies(args.policies)
    except PolicyError as exc:
        sys.stderr.write(f"modelguard-controller: {exc}\n")
        return 2
    ensure_topics(settings.kafka_bootstrap_servers, settings.topics.all())
    registry = CollectorRegistry()
    server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)
    structlog.get_logger("modelguard.controller").info(
        "metrics_listening", url=server.url, models=sorted(policies), dry_run=args.dry_run
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = RoutingTableStore(make_redis(settings.redis_url), settings.redis_keys)
    service = ControllerService(
        settings,
        registry,
        policies,
        writer,
        dry_run=args.dry_run,
        replica=args.replica,
        lease_ttl=args.lease_ttl,
        crash_at=os.environ.get("MODELGUARD_CONTROLLER_CRASH_AT") or None,
    )
    try:
        service.run(stop, idle_exit_seconds=args.idle_exit)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
