"""Compact, JSON-able evidence records kept by the controller (from control events)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed


class WindowRecord(BaseModel):
    """What the controller keeps of one :class:`MetricWindowClosed`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    version: str
    window: str
    window_start: datetime
    window_end: datetime
    n_predictions: int
    n_labelled: int
    n_errors: int
    metrics: dict[str, float]
    #: Source partitions merged into this window (empty: all of them).
    partitions: list[int] = Field(default_factory=list)
    #: False when merged without every partition's partial (grace or timeout ran out).
    complete: bool = True

    @classmethod
    def from_event(cls, e: MetricWindowClosed) -> WindowRecord:
        """The window's fields this record declares (its window as :func:`window_key`);
        ``complete`` is decided when partials are merged, not by the event."""
        kept = {name: getattr(e, name) for name in cls.model_fields if name != "complete"}
        return cls(**{**kept, "window": window_key(e)})


class DriftRecord(BaseModel):
    """What the controller keeps of one :class:`DriftSignal`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    version: str | None
    kind: str
    feature: str | None
    test: str
    statistic: float
    drift_detected: bool
    severity: int
    window_end: datetime
    n_current: int

    @classmethod
    def from_event(cls, e: DriftSignal) -> DriftRecord:
        """The signal's fields this record declares (the severity as its number)."""
        kept = {name: getattr(e, name) for name in cls.model_fields}
        return cls(**{**kept, "severity": int(e.severity)})


def window_key(e: MetricWindowClosed) -> str:
    """``tumbling:60``, ``hopping:300``, ``count:1000``: how a policy selects windows."""
    w = e.window
    if w.kind == "count":
        return f"count:{w.count}"
    length = w.length_seconds or 0.0
    return f"{w.kind}:{length:g}"
