"""``python -m modelguard_services.controller``: the rollback controller.

Settings from ``MODELGUARD_*`` variables (see ``CommonSettings``); the policy file or
directory from ``--policies`` (default ``MODELGUARD_POLICIES`` or ``deploy/policies``).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import ensure_topics
from modelguard.adapters.logging import configure_logging
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.core.control import PolicyError, load_policies
from modelguard.routing import RoutingTableStore
from modelguard_services.controller import ControllerService
from modelguard_services.runtime import load_settings, serve, service_parser


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("modelguard-controller", __doc__)
    parser.add_argument(
        "--policies",
        type=Path,
        default=Path(os.environ.get("MODELGUARD_POLICIES", "deploy/policies")),
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    parser.add_argument("--replica", default=None, help="replica name (default host-pid)")
    parser.add_argument("--lease-ttl", type=float, default=3.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    settings = load_settings(parser.prog, CommonSettings)
    configure_logging(settings.log_level)
    try:
        policies = load_policies(args.policies)
    except PolicyError as exc:
        sys.stderr.write(f"modelguard-controller: {exc}\n")
        return 2
    ensure_topics(settings.kafka_connection(), settings.topics.all())
    writer = RoutingTableStore(make_redis(settings.redis_connection()), settings.redis_keys)

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        ControllerService(
            settings,
            registry,
            policies,
            writer,
            dry_run=args.dry_run,
            replica=args.replica,
            lease_ttl=args.lease_ttl,
            crash_at=os.environ.get("MODELGUARD_CONTROLLER_CRASH_AT") or None,
        ).run(stop, idle_exit_seconds=args.idle_exit)

    return serve("controller", settings, run, models=sorted(policies), dry_run=args.dry_run)


if __name__ == "__main__":
    raise SystemExit(main())
