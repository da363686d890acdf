"""``modelguard-stack``: install, start, stop and inspect the local servers."""

from __future__ import annotations

import argparse
import json
import sys

import structlog

from modelguard.adapters.logging import configure_logging
from modelguard_devstack.stack import SERVER_NAMES, Stack, StackError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelguard-stack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("install", "install missing packages and the Kafka jars"),
        ("up", "install and start (idempotent), then wait until ready"),
        ("down", "stop the servers"),
        ("status", "print readiness and pids as JSON"),
    ):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument(
            "--only",
            type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
            default=None,
            help=f"comma-separated subset of {','.join(SERVER_NAMES)}",
        )
        if name == "up":
            sp.add_argument("--timeout", type=float, default=90.0, help="seconds per server")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    log = structlog.get_logger("modelguard.stack")
    stack = Stack()
    try:
        if args.command == "install":
            for name, secs in stack.install(args.only).items():
                log.info("installed", server=name, seconds=round(secs, 2))
        elif args.command == "up":
            for name, secs in stack.up(args.only, timeout=args.timeout).items():
                log.info("ready", server=name, seconds_to_ready=round(secs, 2))
            eps = stack.endpoints
            sys.stdout.write(
                json.dumps({k: str(v) for k, v in eps.__dict__.items()}, indent=2) + "\n"
            )
        elif args.command == "down":
            log.info("stopped", servers=stack.down(args.only))
        else:
            sys.stdout.write(json.dumps(stack.status(), indent=2) + "\n")
    except StackError as exc:
        log.error("stack_failed", error=str(exc))
        return 1
    return 0
