"""``python -m modelguard_services.drift``: run the drift processor until SIGTERM."""

from __future__ import annotations

import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelguard.adapters.settings import CommonSettings
from modelguard.core.drift import DriftConfig
from modelguard_services.drift.app import DriftService
from modelguard_services.runtime import load_settings, serve, service_parser

#: The drift core's defaults (one home: ``DriftConfig``).
_DEFAULTS = DriftConfig()
#: ``DriftConfig`` fields settable on the command line (``--window-events`` sets
#: ``window_events``), with their type and help; each defaults to the core's value.
_CONFIG_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("window_events", int, "predictions per drift window and model version"),
    ("warmup_events", int, "predictions learned as reference when none is stored"),
    ("alpha", float, "false discovery rate"),
    (
        "concept_label_grace_s",
        float,
        "seconds by which a label may predate its prediction and still join; a label "
        "whose prediction never comes holds back later labels' concept checks this long",
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = service_parser("modelguard-drift", __doc__)
    for field, kind, text in _CONFIG_OPTIONS:
        parser.add_argument(
            f"--{field.replace('_', '-')}",
            type=kind,
            default=getattr(_DEFAULTS, field),
            help=f"{text} (%(default)s)",
        )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="write the latest text/HTML report per model version here",
    )
    parser.add_argument(
        "--group-id", default=None, help="consumer group (default <topic prefix>-drift)"
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="save state + offsets to Redis this often (2)",
    )
    args = parser.parse_args(argv)
    if args.window_events < 100 or args.warmup_events < 100 or not 0 < args.alpha < 1:
        parser.error("--window-events and --warmup-events must be >= 100, --alpha in (0, 1)")
    if not args.concept_label_grace_s >= 0:
        parser.error("--concept-label-grace-s must be >= 0")
    settings = load_settings(parser.prog, CommonSettings)
    config = DriftConfig(**{field: getattr(args, field) for field, _, _ in _CONFIG_OPTIONS})

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        DriftService(
            settings,
            registry,
            config=config,
            report_dir=args.report_dir,
            group_id=args.group_id,
            checkpoint_interval=args.checkpoint_interval,
        ).run(stop, idle_exit_seconds=args.idle_exit)

    return serve("drift", settings, run)


if __name__ == "__main__":
    raise SystemExit(main())
