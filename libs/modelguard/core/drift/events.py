"""What the drift processor takes in (:class:`Observation`, built from a prediction or a
file's row) and what it puts out (:data:`Output`: drift signals, window reports, learned
references, dropped warm-up predictions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

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


_TIME, _FEATURES, _PREDICTION = (
    attrgetter("event_time"),
    attrgetter("features"),
    attrgetter("prediction"),
)


def _confidence(o: PredictionLogged | Observation) -> float | None:
    if isinstance(o, Observation):
        return o.confidence
    return max(o.probabilities.values()) if o.probabilities else None


class Observations:
    """Predictions of one model version, read as columns: the processor's hot path
    reads what it needs straight from the events (PredictionLogged or Observation,
    which share these attribute names) instead of building an :class:`Observation`
    per event. ``Observations(items)[i]`` is the :class:`Observation` of item i."""

    __slots__ = ("items", "validated")

    def __init__(
        self, items: Sequence[PredictionLogged | Observation], validated: bool = False
    ) -> None:
        self.items = items
        #: every item is a contract-checked PredictionLogged (feature values are ints,
        #: floats, strings or None)
        self.validated = validated

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Observation:
        o = self.items[i]
        return o if isinstance(o, Observation) else Observation.from_event(o)

    def part(self, start: int, stop: int) -> Observations:
        return Observations(self.items[start:stop], self.validated)

    def event_times(self) -> list[datetime]:
        return list(map(_TIME, self.items))

    def features(self) -> list[Mapping[str, object]]:
        return list(map(_FEATURES, self.items))

    def predictions(self) -> list[object]:
        return list(map(_PREDICTION, self.items))

    def confidences(self) -> list[float | None]:
        return list(map(_confidence, self.items))

    def observations(self) -> list[Observation]:
        """Every item as an :class:`Observation` (the warm-up buffers those)."""
        return [self[i] for i in range(len(self.items))]


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
    #: concept alarms raised since the previous window closed. Informational only (the
    #: report is internal, never published): which window an alarm lands in depends on
    #: how labels interleave with predictions; the alarms themselves do not
    concept: tuple[DriftSignal, ...] = ()
    #: the error rate is still above the baseline by the LOW effect after an alarm (as
    #: of the labels read when the window closed: informational, like ``concept``)
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
