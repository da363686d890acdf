"""Live model performance: delayed-label join, windows, mergeable metric aggregates.

Pure (no I/O, no clock): :class:`MetricsProcessor` (``handle(event, state)``),
:func:`run` (in-memory driver), :class:`Aggregate` (mergeable window state) and
:func:`compute_metrics`; ``modelguard_services.metrics`` runs it over Kafka.
"""

from modelguard.core.metrics.aggregate import Aggregate, Pair, compute_metrics, merge_all
from modelguard.core.metrics.events import merge_window_events, to_event
from modelguard.core.metrics.processor import (
    DURATION_BUCKETS_S,
    ClosedWindow,
    MetricsConfig,
    MetricsProcessor,
    PartitionState,
    VersionState,
    run,
)
from modelguard.core.metrics.sketch import FixedHistogram, LogSketch

__all__ = [
    "DURATION_BUCKETS_S",
    "Aggregate",
    "ClosedWindow",
    "FixedHistogram",
    "LogSketch",
    "MetricsConfig",
    "MetricsProcessor",
    "Pair",
    "PartitionState",
    "VersionState",
    "compute_metrics",
    "merge_all",
    "merge_window_events",
    "run",
    "to_event",
]
