"""``python -m modelguard_services.experiments``: run the experiments processor."""

from __future__ import annotations

from modelguard.adapters.settings import CommonSettings
from modelguard_services.experiments.app import ExperimentsService
from modelguard_services.runtime import load_settings, serve, service_parser


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("modelguard-experiments", __doc__)
    parser.add_argument("--analysis-interval", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bandit's sampler")
    args = parser.parse_args(argv)
    if args.analysis_interval <= 0:
        parser.error(f"--analysis-interval must be > 0, got {args.analysis_interval}")
    settings = load_settings(parser.prog, CommonSettings)
    return serve(
        "experiments",
        settings,
        lambda registry, stop: ExperimentsService(
            settings, registry, analysis_interval=args.analysis_interval, seed=args.seed
        ).run(stop, idle_exit_seconds=args.idle_exit),
    )


if __name__ == "__main__":
    raise SystemExit(main())
