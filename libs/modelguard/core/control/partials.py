"""Per-partition partial metric windows, merged into whole windows (pure).

The metrics processor publishes one :class:`MetricWindowClosed` per *source partition*
of a window (``partitions=[p]``) with its mergeable ``aggregate`` (ADR 0002). The
controller must judge the window, not its partials: two partials of one window are not
two consecutive breaches, and a minimum sample size applies to the whole window.

A partial is buffered in a :class:`PendingWindow` per (version, window spec,
window start); partials merge exactly (:meth:`Aggregate.merge` on their ``aggregate``,
then :func:`compute_metrics`) into one :class:`WindowRecord` as soon as

1. every partition of the source topic has reported (the partition count is passed in
   by the service, which reads it from the predictions topic's metadata), or
2. the model's event time (the latest window end seen in any metric window) passes
   the window's end by more than ``grace`` (a partition without traffic in a window
   publishes no partial: the processor emits no empty windows), or
3. ``timeout`` has passed since the first partial was emitted (by the caller's clock;
   traffic may stop altogether and event time with it),

whichever comes first (ADR 0005). A partial arriving after its window was merged is
counted as late and dropped. Partials carrying no ``aggregate`` (too large to publish)
cannot be merged exactly: such a window keeps summed counts and ``error_rate`` only, so
guardrails on other metrics report ``error`` rather than a guess.

Everything here is plain JSON-able data (the controller snapshots it to Redis).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from modelguard.contracts.ids import stable_id
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.control.evidence import WindowRecord, window_key
from modelguard.core.metrics import Aggregate, compute_metrics
from modelguard.core.metrics.formulas import accuracy_drop_percent, error_rate

#: Default event-time grace after a window's end (0: the first later window flushes it).
DEFAULT_GRACE_SECONDS = 0.0
#: Default wall-clock wait for the missing partials of a window.
DEFAULT_TIMEOUT_SECONDS = 30.0


class PendingWindow(BaseModel):
    """The partials of one window received so far, merged."""

    model_config = ConfigDict(extra="forbid")

    version: str
    window: str
    window_start: datetime
    window_end: datetime
    first_emitted_at: datetime
    event_ids: list[str] = Field(default_factory=list)
    partitions: list[int] = Field(default_factory=list)
    n_predictions: int = 0
    n_labelled: int = 0
    n_errors: int = 0
    #: Merged ``Aggregate.to_dict()``; None once a partial without aggregate came in.
    aggregate: dict[str, JsonValue] | None = None
    exact: bool = True
    #: ``baseline_accuracy`` of the partials that carried one.
    baselines: list[float] = Field(default_factory=list)


def is_partial(event: MetricWindowClosed, n_partitions: int | None) -> bool:
    """True when ``event`` covers only some source partitions of a time window.

    Count (last-N) windows are per partition by nature (their bounds differ between
    partitions) and are taken as they are; ``partitions == []`` means all of them.
    """
    if not event.partitions or event.window.kind == "count":
        return False
    return n_partitions is None or not set(range(n_partitions)) <= set(event.partitions)


def pending_key(event: MetricWindowClosed) -> str:
    return f"{event.version}|{window_key(event)}|{event.window_start.isoformat()}"


def start(event: MetricWindowClosed) -> PendingWindow:
    return PendingWindow(
        version=event.version,
        window=window_key(event),
        window_start=event.window_start,
        window_end=event.window_end,
        first_emitted_at=event.emitted_at,
    )


def add(pending: PendingWindow, event: MetricWindowClosed) -> bool:
    """Merge ``event`` into ``pending``; False when that partial is already in it."""
    if event.event_id in pending.event_ids:
        return False
    pending.event_ids.append(event.event_id)
    pending.partitions = sorted(set(pending.partitions) | set(event.partitions))
    pending.first_emitted_at = min(pending.first_emitted_at, event.emitted_at)
    pending.n_predictions += event.n_predictions
    pending.n_labelled += event.n_labelled
    pending.n_errors += event.n_errors
    if "baseline_accuracy" in event.metrics:
        pending.baselines.append(event.metrics["baseline_accuracy"])
    if event.aggregate is None:
        pending.exact, pending.aggregate = False, None
    elif pending.exact:
        merged = Aggregate()
        if pending.aggregate is not None:
            merged = Aggregate.from_dict(dict(pending.aggregate))
        merged.merge(Aggregate.from_dict(dict(event.aggregate)))
        pending.aggregate = merged.to_dict()
    return True


def covers(pending: PendingWindow, n_partitions: int | None) -> bool:
    """True once every source partition has reported."""
    return n_partitions is not None and set(range(n_partitions)) <= set(pending.partitions)


def merged_window_id(model: str, version: str, window: str, start_at: datetime) -> str:
    """Deterministic id of a merged window (a replay or a successor derives the same)."""
    return stable_id("mw", model, version, window, start_at.isoformat())


def finish(
    model: str,
    pending: PendingWindow,
    *,
    complete: bool,
    previous: WindowRecord | None = None,
) -> WindowRecord:
    """The merged window of ``pending``: metrics recomputed from the merged aggregate.

    Partition-local comparisons are redone on the whole window where that is exact:
    ``baseline_accuracy`` / ``accuracy_drop_percent`` when the partials agree on the
    baseline, ``accuracy_trend`` against ``previous`` (the version's previous window
    of the same spec). The processor's significance flag of the drop (a z test
    configured there) is partition-local and not carried: guardrails use the drop
    itself, and concept drift comes from the drift processor's signals.
    """
    if pending.exact and pending.aggregate is not None:
        metrics = compute_metrics(Aggregate.from_dict(dict(pending.aggregate)))
    else:
        metrics = {
            "n_predictions": float(pending.n_predictions),
            "n_errors": float(pending.n_errors),
        }
        rate = error_rate(pending.n_errors, pending.n_predictions)
        if rate is not None:
            metrics["error_rate"] = rate
    acc = metrics.get("accuracy")
    if acc is not None:
        if len(set(pending.baselines)) == 1 and pending.baselines[0] > 0:
            base = pending.baselines[0]
            metrics["baseline_accuracy"] = base
            metrics["accuracy_drop_percent"] = accuracy_drop_percent(base, acc)
        if previous is not None and "accuracy" in previous.metrics:
            metrics["accuracy_trend"] = acc - previous.metrics["accuracy"]
    return WindowRecord(
        event_id=merged_window_id(model, pending.version, pending.window, pending.window_start),
        version=pending.version,
        window=pending.window,
        window_start=pending.window_start,
        window_end=pending.window_end,
        n_predictions=pending.n_predictions,
        n_labelled=pending.n_labelled,
        n_errors=pending.n_errors,
        metrics=metrics,
        partitions=list(pending.partitions),
        complete=complete,
    )
