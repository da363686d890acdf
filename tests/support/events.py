"""Event builders for tests: a valid prediction with every field a test does not care
about filled in; each test names only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelguard.contracts import PredictionLogged

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def prediction_fields(**fields: Any) -> dict[str, Any]:
    """The fields of a valid ``fraud``/``v1`` prediction of class 1 at ``T0``; ``fields``
    override or add."""
    return {
        "prediction_id": "p1",
        "model": "fraud",
        "version": "v1",
        "unit_id": "u1",
        "event_time": T0,
        "prediction": 1,
        "latency_ms": 2.0,
        **fields,
    }


def prediction(**fields: Any) -> PredictionLogged:
    """A valid :class:`PredictionLogged` of :func:`prediction_fields`."""
    return PredictionLogged(**prediction_fields(**fields))


def prediction_at(i: int, id_prefix: str, **fields: Any) -> PredictionLogged:
    """Prediction ``i`` of a test stream: id ``<id_prefix><i>``, unit ``u<i>``, ``i``
    seconds after ``T0``; ``fields`` override or add (features, prediction, ...)."""
    at = {"prediction_id": f"{id_prefix}{i}", "unit_id": f"u{i}"}
    return prediction(**{**at, "event_time": T0 + timedelta(seconds=i), **fields})
