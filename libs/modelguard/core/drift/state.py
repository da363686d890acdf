"""The drift processor's state: per model version a :class:`ModelMonitor` (window
counts, sequential and concept detectors, the open window's signals), and the worker's
:class:`DriftState` (references, monitors, warm-up buffers, predictions waiting for a
label, partition watermarks). Saved and restored by :mod:`~modelguard.core.drift.checkpoint`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift.accumulators import WindowAccumulator
from modelguard.core.drift.concept import ConceptDetector
from modelguard.core.drift.events import Observation, WindowReport
from modelguard.core.drift.reference import ReferenceProfile
from modelguard.core.drift.sequential import NumericDriftDetector, SlidingWindowChi2


@dataclass
class ModelMonitor:
    version: str
    reference: ReferenceProfile
    window: WindowAccumulator
    numeric: dict[str, NumericDriftDetector] = field(default_factory=dict)
    categorical: dict[str, SlidingWindowChi2] = field(default_factory=dict)
    concept: ConceptDetector | None = None
    window_index: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    seq_signals: list[DriftSignal] = field(default_factory=list)
    #: features whose sequential detector fired in the current window (one signal each)
    alarmed: set[str] = field(default_factory=set)
    concept_signals: list[DriftSignal] = field(default_factory=list)
    last_report: WindowReport | None = None
    #: the monitor's first prediction (id or time): part of every signal id
    origin: str = ""


@dataclass
class DriftState:
    references: dict[tuple[str, str | None], ReferenceProfile] = field(default_factory=dict)
    monitors: dict[tuple[str, str], ModelMonitor] = field(default_factory=dict)
    warmup: dict[tuple[str, str], list[Observation]] = field(default_factory=dict)
    pending: OrderedDict[str, tuple[str, str, object, str]] = field(default_factory=OrderedDict)
    orphan_labels: int = 0
    #: partitions the worker reads (None: one ordered stream, arrival order = time order)
    sources: frozenset[int] | None = None
    #: latest prediction event time seen per partition
    watermarks: dict[int, datetime] = field(default_factory=dict)
    #: partitions read to their end (they cannot hold back a warm-up)
    drained: frozenset[int] = frozenset()
    #: warm-up predictions dropped because the buffer was full (latest first)
    warmup_dropped: int = 0
    #: the same per (model, version)
    warmup_dropped_by_version: dict[tuple[str, str], int] = field(default_factory=dict)
