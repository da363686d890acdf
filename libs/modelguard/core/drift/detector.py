"""The detector contract every sequential drift detector follows (river style).

A detector is fed values one at a time (:meth:`Detector.update`) or a batch at a time
(:meth:`Detector.update_many`); both return the detector itself, and a batch gives the
same alarms and the same state as the same values fed one by one. After an update,
:attr:`Detector.drift_detected` (read-only) says whether the *last* value raised an
alarm, and :attr:`Detector.alarms` lists the alarms the update raised (their ``index``
is the position in the batch, 0 for a single value). After an alarm the detector
restarts, as river's detectors do, and keeps watching.

:meth:`Detector.to_dict` is the detector as a strict JSON value (parameters, reference
and state; no NaN), and :meth:`Detector.from_dict` its inverse: a restored detector fed
the rest of a stream raises the alarms the original would have.

``tests/unit/test_detector_contract.py`` runs every detector of this package through
the contract.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, cast, runtime_checkable

from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceDataError,
    column_from_dict,
    column_to_dict,
)

X_contra = TypeVar("X_contra", contravariant=True)


class _Indexed(Protocol):
    @property
    def index(self) -> int: ...


A = TypeVar("A", bound=_Indexed)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A detector fired after the ``index``-th value of the batch (0-based).

    ``position`` is the detector's own count of values at the alarm (restarts included),
    independent of how the stream was cut into batches (-1 when unknown); ``histogram``
    the window's counts per bucket at the alarm (sliding-window tests only)."""

    index: int
    test: str
    statistic: float
    threshold: float
    position: int = -1
    histogram: tuple[int, ...] = ()


@runtime_checkable
class Detector(Protocol[X_contra]):
    """A sequential drift detector of values of type ``X_contra``."""

    @property
    def drift_detected(self) -> bool:
        """The last value fed raised an alarm (read-only)."""
        ...

    @property
    def alarms(self) -> Sequence[Any]:
        """The alarms raised by the last update, each with its ``index`` in the batch."""
        ...

    def update(self, x: X_contra) -> Self:
        """Feed one value."""
        ...

    def update_many(self, xs: Sequence[X_contra]) -> Self:
        """Feed a batch of values in order (the same as one :meth:`update` each)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The detector (parameters and state) as a strict JSON value."""
        ...

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The inverse of :meth:`to_dict`."""
        ...


class AlarmState(Generic[A]):
    """What the last update raised, kept by every detector of this package: the contract's
    read-only :attr:`drift_detected` and :attr:`alarms`, and the one rule that sets them
    (:meth:`_report`: drift is detected when the *last* value of the update alarmed)."""

    _drift_detected: bool
    _alarms: list[A]

    @property
    def drift_detected(self) -> bool:
        """The last value fed raised an alarm (read-only)."""
        return self._drift_detected

    @property
    def alarms(self) -> list[A]:
        """The alarms of the last update (``index``: position in the batch)."""
        return self._alarms

    def _report(self, alarms: list[A], n: int) -> list[A]:
        """Record the ``alarms`` of an update of ``n`` values (returns them)."""
        self._drift_detected = bool(alarms) and alarms[-1].index == n - 1
        self._alarms = alarms
        return alarms

    def _clear_alarms(self) -> None:
        """Record an update (or a start) that raised nothing."""
        self._drift_detected = False
        self._alarms = []


@functools.cache
def _keyword_params(cls: type) -> tuple[str, ...]:
    """The keyword-only parameters of ``cls``'s constructor, in order."""
    params = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)


class ProfiledDetector(AlarmState[Alarm], ABC):
    """The one serialised form of a detector built from a reference profile and keyword
    parameters: ``{"reference", "params", "state"}`` (the :class:`Detector` contract's
    ``to_dict`` / ``from_dict``). A detector supplies its parameters, its state and how
    its reference profile is read back."""

    reference: Any
    #: The kind of reference profile the detector takes.
    profile_type: ClassVar[type[NumericProfile] | type[CategoricalProfile]]

    def constructor_params(self) -> dict[str, Any]:
        """The keyword parameters the detector was built with: by default the attributes
        named like its constructor's keyword-only parameters (as river's ``_get_params``
        reads them); a detector that keeps them otherwise overrides this."""
        return {name: getattr(self, name) for name in _keyword_params(type(self))}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The detector's state (no parameters, no reference)."""

    @abstractmethod
    def load_state(self, d: Mapping[str, Any]) -> None:
        """The inverse of :meth:`state_dict`."""

    def to_dict(self) -> dict[str, Any]:
        """Parameters, reference and state as a strict JSON value."""
        return {
            "reference": column_to_dict(self.reference),
            "params": self.constructor_params(),
            "state": self.state_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The inverse of :meth:`to_dict`."""
        build = cast(Callable[..., Self], cls)  # every subclass takes (reference, **params)
        reference = column_from_dict("reference", d["reference"])
        if not isinstance(reference, cls.profile_type):
            raise ReferenceDataError(f"{cls.__name__} needs a {cls.profile_type.__name__}")
        det = build(reference, **d["params"])
        det.load_state(d["state"])
        return det
