"""``modelguard`` command line.

Each feature owns a module in this package with ``register(subparsers)``; the module
adds its sub-command and sets ``handler`` (``args -> exit code``). Argument and settings
errors exit with code 2 and say what is wrong; a failed check or an unreachable Redis
exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from pydantic import ValidationError
from pydantic_settings import SettingsError

from modelguard.adapters.logging import configure_logging
from modelguard.errors import ConfigError

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
    prog = f"modelguard {args.command}"
    try:
        return handler(args)
    except ValidationError as exc:  # the MODELGUARD_* settings
        from modelguard.adapters.settings import describe_settings_error

        sys.stderr.write(f"{prog}: invalid settings: {describe_settings_error(exc)}\n")
        return 2
    except (ConfigError, SettingsError) as exc:  # e.g. an unreadable secret file
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    except Exception as exc:
        # imported only by the commands that use it (``--help`` stays light)
        redis = sys.modules.get("redis")
        if redis is None or not isinstance(exc, redis.RedisError):
            raise
        sys.stderr.write(f"{prog}: Redis: {exc}\n")
        return 1
