"""``modelguard`` command line.

Sub-commands are registered by small modules so each feature owns its own CLI part:
``schemas`` (write/check the JSON Schema files). Errors in arguments exit with code 2
and say what is wrong; a failed check exits with code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from modelguard.contracts.registry import stale_schema_files, write_schema_files

Handler = Callable[[argparse.Namespace], int]


def _schemas(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if args.action == "write":
        names = write_schema_files(directory)
        sys.stdout.write(f"wrote {len(names)} schema files to {directory}\n")
        return 0
    stale = stale_schema_files(directory)
    if stale:
        sys.stderr.write(
            f"stale JSON Schema files in {directory}: {', '.join(stale)}\n"
            "run `modelguard schemas write` and commit the result\n"
        )
        return 1
    sys.stdout.write(f"schemas in {directory} are up to date\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelguard", description="modelguard command line")
    sub = parser.add_subparsers(dest="command", required=True)
    schemas = sub.add_parser("schemas", help="write or check the JSON Schema files")
    schemas.add_argument("action", choices=["write", "check"])
    schemas.add_argument("--dir", default="schemas", help="directory of the schema files")
    schemas.set_defaults(handler=_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
