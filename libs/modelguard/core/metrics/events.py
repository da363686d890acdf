"""Between :class:`ClosedWindow` (core) and :class:`MetricWindowClosed` (contract)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from modelguard.contracts.common import WindowSpec
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.metrics.aggregate import Aggregate, compute_metrics
from modelguard.core.metrics.processor import ClosedWindow

#: Above this encoded size the ``aggregate`` is left out (consumers' payload limit).
MAX_AGGREGATE_BYTES = 48 * 1024


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def to_event(window: ClosedWindow, emitted_at: datetime) -> MetricWindowClosed:
    """The contract event for a closed window (``emitted_at`` from the caller's clock)."""
    spec = (
        WindowSpec(kind="count", count=window.count)
        if window.kind == "count"
        else WindowSpec(kind="tumbling", length_seconds=window.length_s)
    )
    agg: dict[str, Any] | None = window.aggregate.to_dict()
    if len(json.dumps(agg, separators=(",", ":"))) > MAX_AGGREGATE_BYTES:
        agg = None
    a = window.aggregate
    return MetricWindowClosed(
        event_id=window.event_id,
        model=window.model,
        version=window.version,
        window=spec,
        window_start=_ts(window.start),
        window_end=_ts(window.end),
        partitions=[window.partition],
        n_predictions=a.n_predictions if window.kind == "tumbling" else len_pairs(a),
        n_labelled=len_pairs(a),
        n_errors=a.n_errors,
        metrics=window.metrics,
        aggregate=agg,
        emitted_at=emitted_at,
    )


def len_pairs(a: Aggregate) -> int:
    return a.n_labelled + a.n_regression


def merge_window_events(
    events: Iterable[MetricWindowClosed],
) -> tuple[Aggregate, dict[str, float]]:
    """Merge per-partition partials of one window (duplicates by ``event_id`` ignored)
    into one aggregate and its metrics (without baseline comparison)."""
    seen: set[str] = set()
    total = Aggregate()
    for e in events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if e.aggregate is None:
            raise ValueError(f"window {e.event_id} carries no aggregate")
        total.merge(Aggregate.from_dict(dict(e.aggregate)))
    return total, compute_metrics(total)
