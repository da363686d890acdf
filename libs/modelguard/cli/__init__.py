"""``modelguard`` command line.

Each feature owns a module in this package with ``register(subparsers)``; the module
adds its sub-command and sets ``handler`` (``args -> exit code``). Argument errors exit
with code 2 and say what is wrong; a failed check exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from modelguard.adapters.logging import configure_logging

Handler = Callable[[argparse.Namespace], int]

#: Sub-command modules, in help order. Add one line per feature.
COMMAND_MODULES: tuple[str, ...] = (
    "modelguard.cli.schemas",
    "modelguard.cli.experiment",
    "modelguard.cli.drift",
    "modelguard.cli.control",
    "modelguard.cli.routing",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelguard", description="modelguard command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument(
        "--log-level", default="WARNING", help="level of the JSON logs written to stderr"
    )
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level)
    except ValueError as exc:
        parser.error(f"--log-level: {exc}")
    handler: Handler = args.handler
    return handler(args)
