"""``modelguard schemas write|check``: the JSON Schema files under ``schemas/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schemas", help="write or check the JSON Schema files")
    p.add_argument("action", choices=["write", "check"])
    p.add_argument("--dir", default="schemas", help="directory of the schema files")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modelguard.contracts.registry import stale_schema_files, write_schema_files

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
