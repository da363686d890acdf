"""What the drift processor takes in (:class:`Observation`, built from a prediction or a
file's row) and what it puts out (:data:`Output`: drift signals, window reports, learned
references, dropped warm-up predictions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.predictions import PredictionLogged
from modelguard.core.drift.evaluation import WindowVerdict
from modelguard.core.drift.reference import ReferenceProfile


@dataclass(frozen=True)
class Observation:
    """What the processor needs of one prediction (built from a PredictionLogged or a
    row of a file)."""

    model: str
    version: str
    event_time: datetime
    features: Mapping[str, object]
    prediction: object = None
    confidence: float | None = None
    prediction_id: str | None = None
    task: str = "classification"

    @classmethod
    def from_event(cls, e: PredictionLogged) -> Observation:
        conf = max(e.probabilities.values()) if e.probabilities else None
        return cls(
            e.model,
            e.version,
            e.event_time,
            e.features,
            e.prediction,
            conf,
            e.prediction_id,
            e.task,
        )


@dataclass(frozen=True)
class WindowReport:
    model: str
    version: str
    reference_id: str
    window_index: int
    window_start: datetime
    window_end: datetime
    verdict: WindowVerdict
    sequential: tuple[DriftSignal, ...] = ()
    concept: tuple[DriftSignal, ...] = ()
    #: the error rate is still above the baseline by the LOW effect after an alarm
    concept_drifted: bool = False


@dataclass(frozen=True)
class ReferenceLearned:
    reference: ReferenceProfile


@dataclass(frozen=True)
class WarmupDropped:
    """``dropped`` warm-up predictions of a version were not tested: the warm-up buffer
    was full while partitions caught up on a backlog (the latest by event time go);
    ``total`` is the worker's running count (the service logs it and counts it)."""

    model: str
    version: str
    dropped: int
    total: int


Output = DriftSignal | WindowReport | ReferenceLearned | WarmupDropped
#: Window tests whose signal is sent every window, drifted or not (so consumers see a
#: recovery); the other window tests send a signal only when they fire.
HEADLINE_TESTS = frozenset({"ks", "chi_square", "drifted_share"})
