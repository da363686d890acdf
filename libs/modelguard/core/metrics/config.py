"""Settings and shared constants of the metrics processor (all times in event seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.telemetry import DURATION_BUCKETS, LATENCY_STAGES, TOTAL_STAGE

#: Buckets and stages of ``model_inference_duration_seconds`` (one home: the catalogue).
DURATION_BUCKETS_S: tuple[float, ...] = DURATION_BUCKETS
STAGES: tuple[str, ...] = (*LATENCY_STAGES, TOTAL_STAGE)
#: Expiry of pending predictions, orphans and remembered ids runs at most this often
#: (event time); expiring later than due never changes a result (see ``_sweep``).
SWEEP_INTERVAL_S = 1.0
#: Share of a memory bound evicted at once when it is reached (one scan for many entries).
EVICT_FRACTION = 1 / 64
#: A last-N aggregate catches up with at most this many pairs one by one; more are
#: aggregated in one go and merged (:meth:`Aggregate.of_pairs` is cheaper per pair).
CATCH_UP_ONE_BY_ONE = 32

Event = PredictionLogged | LabelObserved
VersionKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Processor settings (all durations in seconds of event time)."""

    window_lengths_s: tuple[float, ...] = (60.0, 300.0, 3600.0)
    last_n: int = 1000
    label_ttl_s: float = 3600.0
    orphan_grace_s: float = 600.0
    allowed_lateness_s: float = 10.0
    max_input_lag_s: float = 300.0
    #: Declared baseline accuracy per model; absent models take the accuracy of their
    #: first full last-N window as baseline.
    baselines: Mapping[str, float] = field(default_factory=dict)
    #: Accuracy drop (percent of baseline) that, when significant, flags the version as
    #: degraded (``accuracy_degraded``; concept drift proper is the drift processor's).
    drift_drop_percent: float = 10.0
    #: One-sided z score the drop must exceed (2.33: p < 0.01).
    drift_z: float = 2.33
    min_labelled_for_drift: int = 100
    #: Largest lead of an event's time over its arrival (broker) time; an event further
    #: ahead is clamped to ``arrival + max_future_s`` and counted. Keep it at most
    #: ``allowed_lateness_s``: then no clamped event can make an on-time one late.
    max_future_s: float = 5.0
    #: Memory bounds per partition (ADR 0011: size them as rate x (TTL + grace)).
    max_pending: int = 1_000_000
    max_orphans: int = 250_000
    max_remembered: int = 2_000_000
