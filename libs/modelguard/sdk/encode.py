"""Fast validation and JSON encoding of SDK events, equivalent to the contracts.

The common, valid case is checked with plain type tests and encoded with
``pydantic_core.to_json`` (a few microseconds). Anything unusual falls back to the
pydantic model, which either accepts it (and encodes it) or raises an error naming
the field; so the fast path may be stricter than the contract, never looser (a
property test in ``tests/unit/test_sdk_encode.py`` checks this).

>>> from datetime import datetime, UTC
>>> enc = PredictionEncoder()
>>> key, value = enc.encode(prediction_id="p1", model="fraud", version="v2", unit_id="u1",
...     event_time=datetime(2026, 1, 1, tzinfo=UTC), features={"amount": 12.5},
...     prediction=1, latency_ms=3.0)
>>> key
b'p1'
>>> enc.encode(prediction_id="p1", model="fraud", version="v2", unit_id="u1",
...     event_time=datetime(2026, 1, 1, tzinfo=UTC), features={"amount": float("nan")},
...     prediction=1, latency_ms=3.0)
Traceback (most recent call last):
...
modelguard.sdk.encode.InvalidEventError: features.amount: Input should be a finite number
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from modelguard.contracts.codec import encode_event
from modelguard.contracts.common import CLASS_PATTERN, event_time_in_range
from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.predictions import LabelObserved, PredictionLogged

_ID = re.compile(rf"[^\s]{{1,{LIMITS.max_id_length}}}").fullmatch
_NAME = re.compile(rf"[^\s]{{1,{LIMITS.max_name_length}}}").fullmatch
_MODEL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{LIMITS.max_id_length - 1}}}").fullmatch
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}").fullmatch
_CLASS = re.compile(CLASS_PATTERN).fullmatch
_MAX_ABS = LIMITS.max_abs_number
_MAX_ABS_INT = int(LIMITS.max_abs_number)
_STAGES = frozenset(("preprocessing", "inference", "postprocessing"))
_MAX_LATENCY_MS = 3_600_000.0
_CACHE_LIMIT = 4096


class InvalidEventError(ValueError):
    """An SDK call with invalid arguments; the message names the argument."""


def _is_id(value: object) -> bool:
    return type(value) is str and _ID(value) is not None


def _is_class(value: str) -> bool:
    return len(value) <= LIMITS.max_class_length and _CLASS(value) is not None


def _is_target(value: object) -> bool:
    t = type(value)
    if t is int:
        return -_MAX_ABS_INT <= value <= _MAX_ABS_INT  # type: ignore[operator]
    if t is float:
        return -_MAX_ABS <= value <= _MAX_ABS  # type: ignore[operator]  # (NaN fails)
    return t is str and _is_class(value)  # type: ignore[arg-type]


def _is_aware(value: object) -> bool:
    return type(value) is datetime and value.utcoffset() is not None and event_time_in_range(value)


class PredictionEncoder:
    """Validates and encodes predictions and labels; caches names already checked."""

    def __init__(self) -> None:
        self._models: set[tuple[object, object]] = set()
        self._feature_keys: set[tuple[str, ...]] = set()

    # -- predictions ---------------------------------------------------------------------
    def encode(
        self,
        *,
        prediction_id: str,
        model: str,
        version: str,
        unit_id: str,
        event_time: datetime,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        probabilities: Mapping[str, float] | None = None,
        score: float | None = None,
        latency_ms: float,
        stage_latency_ms: Mapping[str, float] | None = None,
        error_type: str | None = None,
        experiment_id: str | None = None,
        task: str = "classification",
    ) -> tuple[bytes, bytes]:
        """``(key, value)`` of a valid :class:`PredictionLogged`, or
        :class:`InvalidEventError`."""
        data = {
            "prediction_id": prediction_id,
            "model": model,
            "version": version,
            "unit_id": unit_id,
            "experiment_id": experiment_id,
            "event_time": event_time,
            "task": task,
            "features": features if features is not None else {},
            "prediction": prediction,
            "probabilities": probabilities,
            "score": score,
            "latency_ms": latency_ms,
            "stage_latency_ms": stage_latency_ms,
            "error_type": error_type,
        }
        if self._fast_ok(data):
            return prediction_id.encode(), to_json(data)
        event = _validate(PredictionLogged, data, "prediction")
        return event.prediction_id.encode(), encode_event(event)

    def _fast_ok(self, d: dict[str, Any]) -> bool:
        if (d["model"], d["version"]) not in self._models:
            if not (
                type(d["model"]) is str
                and _MODEL(d["model"])
                and type(d["version"]) is str
                and _MODEL(d["version"])
            ):
                return False
            if len(self._models) < _CACHE_LIMIT:
                self._models.add((d["model"], d["version"]))
        if not (_is_id(d["prediction_id"]) and _is_id(d["unit_id"])):
            return False
        if d["experiment_id"] is not None and not _is_id(d["experiment_id"]):
            return False
        if not _is_aware(d["event_time"]):
            return False
        task = d["task"]
        if task != "classification" and task != "regression":
            return False
        features = d["features"]
        if type(features) is not dict:
            return False
        keys = tuple(features)
        if keys not in self._feature_keys:
            if len(keys) > LIMITS.max_features or not all(
                type(k) is str and _NAME(k) for k in keys
            ):
                return False
            if len(self._feature_keys) < _CACHE_LIMIT:
                self._feature_keys.add(keys)
        for v in features.values():
            t = type(v)
            if t is float or t is int:
                if not -_MAX_ABS <= v <= _MAX_ABS:  # NaN and inf fail too
                    return False
            elif not (v is None or (t is str and len(v) <= LIMITS.max_string_length)):
                return False
        prediction = d["prediction"]
        error_type = d["error_type"]
        if prediction is None:
            if error_type is None:
                return False
        elif not _is_target(prediction) or (task == "regression" and type(prediction) is str):
            return False
        if error_type is not None and not (type(error_type) is str and _ERROR_TYPE(error_type)):
            return False
        latency = d["latency_ms"]
        if not (
            (type(latency) is float or type(latency) is int) and 0 <= latency <= _MAX_LATENCY_MS
        ):
            return False
        score = d["score"]
        if score is not None and not (type(score) is float and -_MAX_ABS <= score <= _MAX_ABS):
            return False
        probabilities = d["probabilities"]
        if probabilities is not None and not _probabilities_ok(probabilities):
            return False
        stages = d["stage_latency_ms"]
        return stages is None or _stages_ok(stages)

    # -- labels ---------------------------------------------------------------------------
    def encode_label(
        self,
        *,
        prediction_id: str,
        label: Any,
        event_time: datetime,
        model: str | None = None,
    ) -> tuple[bytes, bytes]:
        """``(key, value)`` of a valid :class:`LabelObserved`."""
        data = {
            "prediction_id": prediction_id,
            "model": model,
            "label": label,
            "event_time": event_time,
        }
        if (
            _is_id(prediction_id)
            and _is_target(label)
            and _is_aware(event_time)
            and (model is None or (type(model) is str and _MODEL(model) is not None))
        ):
            return prediction_id.encode(), to_json(data)
        event = _validate(LabelObserved, data, "label")
        return event.prediction_id.encode(), encode_event(event)


def _probabilities_ok(p: object) -> bool:
    if type(p) is not dict or len(p) > LIMITS.max_classes:
        return False
    total = 0.0
    for k, v in p.items():
        if not (type(k) is str and _is_class(k) and type(v) is float and 0.0 <= v <= 1.0):
            return False
        total += v
    return not p or abs(total - 1.0) <= 1e-3 * 0.5  # stricter than the contract


def _stages_ok(s: object) -> bool:
    if type(s) is not dict:
        return False
    return all(
        k in _STAGES and (type(v) is float or type(v) is int) and 0 <= v <= _MAX_LATENCY_MS
        for k, v in s.items()
    )


def _validate(model: type[Any], data: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(describe(exc)) from None


#: Location parts pydantic adds for the branches of a union (``features.x.int``).
_UNION_TAGS = frozenset(
    (
        "int",
        "float",
        "str",
        "bool",
        "none",
        "constrained-str",
        "constrained-int",
        "constrained-float",
        "function-after[_check_event_time(), datetime]",
    )
)


def describe(exc: ValidationError, limit: int = 5) -> str:
    """``field.path: message; ...`` with one message per field: of a union's failed
    branches, the most specific (``finite_number`` rather than ``int_type``)."""
    best: dict[str, tuple[bool, str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        parts = [str(p) for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)]
        loc = ".".join(parts) or "<event>"
        generic = str(err["type"]).endswith("_type")
        if loc not in best or (best[loc][0] and not generic):
            best[loc] = (generic, str(err["msg"]))
    items = [f"{loc}: {msg}" for loc, (_, msg) in best.items()]
    extra = len(items) - limit
    return "; ".join(items[:limit]) + (f"; ... and {extra} more" if extra > 0 else "")


def encode_exposure(event: ExposureLogged) -> tuple[bytes, bytes]:
    """Exposures are keyed by unit id (ADR 0002)."""
    return event.unit_id.encode(), encode_event(event)
