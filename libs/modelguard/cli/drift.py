"""``modelguard drift``: offline drift report of a current data set against a reference.

    modelguard drift --reference ref.parquet --current cur.parquet [--format html -o r.html]
    modelguard drift --reference ref.csv --save-reference ref.json --model fraud
    modelguard drift --reference ref.json --publish --model fraud --version v2

The current file goes through the same processor as the drift service (one window of
all its rows), so the verdicts match the streaming ones on the same data. Exit codes:
0 report written (1 with ``--fail-on-drift`` when the dataset drifted), 2 bad
arguments or unreadable files (the message says which file and where).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy modules (river, scipy) are imported by the handler (fast `--help`)
    from modelguard.adapters.drift_files import Table
    from modelguard.core.drift import DriftConfig, Observation, WindowReport
    from modelguard.core.drift.reference import ReferenceProfile

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "drift",
        help="drift report of a current data set against a reference (Parquet, CSV, JSONL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--reference",
        required=True,
        type=Path,
        help="reference data (.parquet/.csv/.jsonl) or a saved profile (.json)",
    )
    p.add_argument("--current", type=Path, help="current data to test")
    p.add_argument("--model", default="model", help="model name (default: 'model')")
    p.add_argument("--version", default=None, help="model version of the reference")
    p.add_argument(
        "--categorical",
        default="",
        help="comma-separated columns to treat as categorical even when numeric",
    )
    # defaults resolved in run() from DriftConfig (the drift core is not imported for --help)
    p.add_argument(
        "--alpha", type=float, default=None, help="false discovery rate (default: the service's)"
    )
    p.add_argument(
        "--dataset-share",
        type=float,
        default=None,
        help="dataset drift above this share of drifted features (default: the service's)",
    )
    p.add_argument("--format", choices=["text", "html", "json"], default="text")
    p.add_argument("-o", "--output", type=Path, help="write the report here (default stdout)")
    p.add_argument("--save-reference", type=Path, help="write the reference profile (JSON)")
    p.add_argument(
        "--publish", action="store_true", help="store the reference in Redis for the drift service"
    )
    p.add_argument("--redis-url", default=None, help="Redis URL (default: settings)")
    p.add_argument("--redis-prefix", default=None, help="Redis key prefix (default: settings)")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 1 on dataset drift")
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    sys.stderr.write(f"modelguard drift: error: {message}\n")
    return 2


def observations(table: Table, model: str, version: str) -> list[Observation]:
    from modelguard.adapters.drift_files import DataFileError, parse_time
    from modelguard.core.drift import Observation

    feats = table.features()
    names = list(feats)
    pred = table.column("prediction")
    conf = table.column("confidence")
    times = table.column("event_time")
    task = "classification"
    if pred is not None and any(isinstance(v, float) for v in pred):
        task = "regression"
    out: list[Observation] = []
    for i in range(table.n_rows):
        c = conf[i] if conf is not None else None
        if c is not None and not isinstance(c, int | float):
            raise DataFileError(f"{table.path}: row {i + 1}: confidence must be a number")
        t = parse_time(table.path, i + 1, times[i] if times else None, EPOCH + timedelta(seconds=i))
        out.append(
            Observation(
                model=model,
                version=version,
                event_time=t,
                features={n: feats[n][i] for n in names},
                prediction=pred[i] if pred is not None else None,
                confidence=None if c is None else float(c),
                task=task,
            )
        )
    return out


def load_reference(
    path: Path, model: str, version: str | None, categorical: list[str]
) -> ReferenceProfile:
    from modelguard.adapters.drift_files import DataFileError, read_profile, read_table
    from modelguard.core.drift import learn_reference

    saved = read_profile(path)
    if saved is not None:
        return saved
    table = read_table(path)
    if table.n_rows == 0:
        raise DataFileError(f"{path}: no rows")
    obs = observations(table, model, version or "reference")
    return learn_reference(obs, model, version, source=path.name, categorical=categorical)


def offline_report(
    reference: ReferenceProfile, current: list[Observation], config: DriftConfig
) -> WindowReport:
    from modelguard.adapters.drift_files import DataFileError
    from modelguard.core.drift import DriftProcessor, DriftState, WindowReport

    processor = DriftProcessor(config, worker="offline")
    state = DriftState()
    processor.set_reference(state, reference)
    outputs = processor.run(current, state)
    reports = [o for o in outputs if isinstance(o, WindowReport)]
    if not reports:
        raise DataFileError(f"the current data has fewer than {config.min_window_events} rows")
    return reports[-1]


def run(args: argparse.Namespace) -> int:
    from modelguard.adapters.drift_files import DataFileError, read_table
    from modelguard.core.drift import DriftConfig
    from modelguard.core.drift.reference import ReferenceDataError
    from modelguard.core.drift.report import render_html, render_json, render_text

    defaults = DriftConfig()
    if args.alpha is None:
        args.alpha = defaults.alpha
    if args.dataset_share is None:
        args.dataset_share = defaults.dataset_share
    if not 0 < args.alpha < 1:
        return _fail(f"--alpha must be in (0, 1), got {args.alpha}")
    if not 0 <= args.dataset_share < 1:
        return _fail(f"--dataset-share must be in [0, 1), got {args.dataset_share}")
    if args.current is None and args.save_reference is None and not args.publish:
        return _fail("give --current (a report), --save-reference or --publish")
    categorical = [c for c in args.categorical.split(",") if c]
    try:
        reference = load_reference(args.reference, args.model, args.version, categorical)
    except (DataFileError, ReferenceDataError) as exc:
        return _fail(str(exc) if str(args.reference) in str(exc) else f"{args.reference}: {exc}")
    if args.save_reference is not None:
        args.save_reference.write_text(reference.to_json() + "\n")
        sys.stdout.write(f"reference {reference.reference_id} written to {args.save_reference}\n")
    if args.publish:
        from modelguard.adapters.drift_store import ReferenceStore
        from modelguard.adapters.redis_client import make_redis
        from modelguard.adapters.settings import CommonSettings

        settings = CommonSettings()
        client = make_redis(settings.redis_connection(url=args.redis_url))
        published = ReferenceStore(client, args.redis_prefix or settings.redis_prefix).publish(
            reference
        )
        sys.stdout.write(
            f"reference {published.reference_id} of {reference.model}/"
            f"{reference.version or '*'} is current (revision {published.revision})\n"
        )
    if args.current is None:
        return 0
    try:
        table = read_table(args.current)
        version = args.version or reference.version or "current"
        current = observations(table, reference.model, version)
        report = offline_report(
            reference,
            current,
            DriftConfig(
                window_events=max(1, len(current)),
                alpha=args.alpha,
                dataset_share=args.dataset_share,
                warmup_events=1,
            ),
        )
    except (DataFileError, ReferenceDataError) as exc:
        return _fail(str(exc))
    render = {"text": render_text, "html": render_html, "json": render_json}[args.format]
    text = render(report)
    if args.output is not None:
        args.output.write_text(text)
        sys.stdout.write(f"report written to {args.output}\n")
    else:
        sys.stdout.write(text)
    return 1 if args.fail_on_drift and report.verdict.dataset_drift else 0
