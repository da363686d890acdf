"""Live model performance: delayed-label join, windows, mergeable metric aggregates.

Pure (no I/O, no clock): :class:`MetricsProcessor` (``handle(event, state)``),
:func:`run` (in-memory driver), :class:`Aggregate` (mergeable window state) and
:func:`compute_metrics`; ``modelguard_services.metrics`` runs it over Kafka.

Modules, one concern each: ``config`` (settings, constants), ``state`` (partition and
version state, JSON form, closed windows), ``join`` (delayed-label join, expiry, memory
bounds), ``windowing`` (watermark, tumbling and count windows), ``baseline`` (baseline
comparison and trend), ``processor`` (the processor assembled from those, ``run``),
``pairs`` (a labelled pair's contribution, class keys), ``aggregate`` (the mergeable
aggregate), ``scoring`` (metrics of an aggregate), ``formulas`` (accuracy drop, error
rate: one home), ``sketch`` (histograms), ``events`` (contract events).
"""

from modelguard.core.metrics.aggregate import Aggregate, Pair, compute_metrics, merge_all
from modelguard.core.metrics.events import merge_window_events, to_event
from modelguard.core.metrics.formulas import accuracy_drop_percent, error_rate
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
    "accuracy_drop_percent",
    "compute_metrics",
    "error_rate",
    "merge_all",
    "merge_window_events",
    "run",
    "to_event",
]
