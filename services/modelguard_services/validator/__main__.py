"""``python -m modelguard_services.validator``: run the edge validator until SIGTERM."""

from __future__ import annotations

import argparse

from modelguard_services.runtime import serve
from modelguard_services.validator.app import ValidatorService
from modelguard_services.validator.settings import ValidatorSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelguard-validator", description=__doc__)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without messages",
    )
    args = parser.parse_args(argv)
    settings = ValidatorSettings()
    return serve(
        "validator",
        settings,
        lambda registry, stop: ValidatorService(settings, registry).run(
            stop, idle_exit_seconds=args.idle_exit
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
