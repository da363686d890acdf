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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

X_contra = TypeVar("X_contra", contravariant=True)


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
