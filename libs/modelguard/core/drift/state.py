"""The drift processor's state: per model version a :class:`ModelMonitor` (window
counts, sequential and concept detectors, the open window's signals), and the worker's
:class:`DriftState` (references, monitors, warm-up buffers, predictions waiting for a
label, partition watermarks). Saved and restored by :mod:`~modelguard.core.drift.checkpoint`."""

from __future__ import annotations

from collections import OrderedDict, deque
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
    #: concept alarms since the last window close, listed in its report: informational
    #: only (which window an alarm lands in depends on how labels interleave with
    #: predictions; the alarms themselves do not)
    concept_signals: list[DriftSignal] = field(default_factory=list)
    last_report: WindowReport | None = None
    #: the monitor's first prediction (id or time): part of every signal id
    origin: str = ""


#: a prediction waiting for its label: (model, version, prediction, task, clock_at), where
#: ``clock_at`` is the prediction clock right after it arrived
Pending = tuple[str, str, object, str, datetime]
#: a label waiting for its prediction (label order): (prediction id, label, event time)
Waiting = tuple[str, object, datetime]
#: a joined label not yet fed to its version's concept detector:
#: (task, prediction, label, label event time)
Joined = tuple[str, object, object, datetime]


@dataclass
class DriftState:
    references: dict[tuple[str, str | None], ReferenceProfile] = field(default_factory=dict)
    monitors: dict[tuple[str, str], ModelMonitor] = field(default_factory=dict)
    warmup: dict[tuple[str, str], list[Observation]] = field(default_factory=dict)
    pending: OrderedDict[str, Pending] = field(default_factory=OrderedDict)
    #: labels read but not resolved yet, in label order (only the head resolves)
    waiting: deque[Waiting] = field(default_factory=deque)
    #: joined labels per (model, version), in label order, until its monitor exists
    joined: dict[tuple[str, str], deque[Joined]] = field(default_factory=dict)
    #: the prediction clock: running max of prediction event times, by at most
    #: ``clock_step_s`` per prediction (None before the first prediction)
    clock: datetime | None = None
    orphan_labels: int = 0
    #: labels counted orphans because too many were waiting (``max_waiting_labels``)
    label_overflow: int = 0
    #: predictions dropped from ``pending`` by ``max_pending_predictions``
    pending_evicted: int = 0
    #: joined errors dropped by ``max_concept_backlog`` before their monitor existed
    concept_backlog_dropped: int = 0
    #: what names this state's stream in every signal id it gives (the drift service:
    #: ``p<partition>``, so the same window of two partitions never shares an id); ""
    #: for one stream (files, tests: ids as before)
    stream: str = ""
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

    def unused_counts(self) -> dict[str, int]:
        """Events the concept-drift path could not use, by reason (each counted once):
        ``orphan`` a label whose prediction did not join within the grace,
        ``label_overflow`` a label made an orphan because ``max_waiting_labels`` were
        waiting, ``pending_evicted`` a prediction evicted by ``max_pending_predictions``
        before its label came, ``backlog_dropped`` a joined label dropped by
        ``max_concept_backlog`` before its version's monitor existed.

        >>> DriftState(orphan_labels=3, label_overflow=1).unused_counts()["orphan"]
        2
        """
        return {
            "orphan": self.orphan_labels - self.label_overflow,
            "label_overflow": self.label_overflow,
            "pending_evicted": self.pending_evicted,
            "backlog_dropped": self.concept_backlog_dropped,
        }
