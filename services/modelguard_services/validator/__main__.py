"""``python -m modelguard_services.validator``: run the edge validator until SIGTERM."""

from __future__ import annotations

from modelguard_services.runtime import load_settings, serve, service_parser
from modelguard_services.validator.app import ValidatorService
from modelguard_services.validator.settings import ValidatorSettings


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("modelguard-validator", __doc__)
    args = parser.parse_args(argv)
    settings = load_settings(parser.prog, ValidatorSettings)
    return serve(
        "validator",
        settings,
        lambda registry, stop: ValidatorService(settings, registry).run(
            stop, idle_exit_seconds=args.idle_exit
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
