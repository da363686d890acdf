"""Fast validation and JSON encoding of SDK events, equivalent to the contracts.

The common, valid case is checked with plain type tests and encoded with ``orjson``
(a few microseconds; ``pydantic_core.to_json`` when orjson cannot encode a value, such
as an integer beyond 64 bits). Anything unusual falls back to the
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
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import to_json

from modelguard.contracts.codec import encode_event
from modelguard.contracts.common import CLASS_PATTERN, event_time_in_range
from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.limits import LIMITS
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.telemetry import LATENCY_STAGES
from modelguard.errors import InvalidInputError

_MAX_ID = LIMITS.max_id_length
_MAX_NAME = LIMITS.max_name_length
_MAX_FEATURES = LIMITS.max_features
_MAX_CLASSES = LIMITS.max_classes
_MAX_PAYLOAD = LIMITS.max_payload_bytes
_MODEL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{LIMITS.max_id_length - 1}}}").fullmatch
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}").fullmatch
_CLASS = re.compile(CLASS_PATTERN).fullmatch
_MAX_ABS = LIMITS.max_abs_number
_MAX_ABS_INT = int(LIMITS.max_abs_number)
#: The event-time bounds of the contract (``contracts.limits``), for an inline check.
_MIN_TIME = datetime.fromtimestamp(LIMITS.min_event_time, tz=UTC)
_MAX_TIME = datetime.fromtimestamp(LIMITS.max_event_time, tz=UTC)
_STAGES = frozenset(LATENCY_STAGES)
_MAX_LATENCY_MS = 3_600_000.0
_CACHE_LIMIT = 4096
_NAME_CACHE_LIMIT = 65536
_NUMBER_TYPES = frozenset((int, float))
#: Up to this many features, a loop checks them faster than builtin reductions.
_LOOP_FEATURES = 16
#: Stricter than the contract's 1e-3 (the fast path uses ``sum``, not ``math.fsum``).
_PROBABILITY_FAST_TOLERANCE = 0.5e-3


class InvalidEventError(InvalidInputError):
    """An SDK call with invalid arguments; the message names the argument."""


def _dumps(data: dict[str, Any]) -> bytes:
    """JSON of validated fields: orjson (times as ``...Z``), else pydantic's encoder for
    what orjson refuses (integers beyond 64 bits, unusual tzinfo classes)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_UTC_Z)
    except TypeError:  # orjson.JSONEncodeError
        return to_json(data)


def _token_check(longest: int) -> Callable[[object], bool]:
    """The fast check of a token: 1 to ``longest`` characters, none of them whitespace.

    ``str.isprintable()`` is false for every whitespace character except the space
    (Unicode categories Cc, Zs, Zl, Zp), so with the space excluded it implies the
    contract's ``[^\\s]`` (it also refuses a few non-space characters, such as format
    characters: those events take the contract's path); a test checks this against the
    contract over all code points.
    """

    def check(value: object) -> bool:
        return (
            type(value) is str
            and 0 < len(value) <= longest
            and value.isprintable()
            and " " not in value
        )

    return check


#: An ``Identifier`` (ids, model and version names): up to ``max_id_length`` characters.
_is_id = _token_check(_MAX_ID)
#: A ``Name`` (feature or metric name): up to ``max_name_length`` characters.
_is_name = _token_check(_MAX_NAME)


def _is_class(value: str) -> bool:
    return len(value) <= LIMITS.max_class_length and _CLASS(value) is not None


def _is_class_key(value: object) -> bool:
    return type(value) is str and _is_class(value)


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
    """Validates and encodes predictions and labels; caches names already checked.

    The hot path is :meth:`encode_prediction` (positional, no keyword dicts): a few type
    tests on the values, set lookups for names seen before (model/version/task and the
    key tuples of ``features`` and ``probabilities``), builtin reductions (``sum``,
    ``min``, ``max``) over numeric values instead of a Python loop, and one
    ``orjson.dumps`` of a dict holding only the fields that are set (absent optional fields
    take the contract's defaults when decoded).
    """

    def __init__(self) -> None:
        self._models: set[tuple[object, object, object]] = set()
        self._names: set[str] = set()  # feature names already checked
        self._classes: set[str] = set()  # probability keys (class strings) already checked

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
        return self.encode_prediction(
            prediction_id,
            model,
            version,
            unit_id,
            event_time,
            features,
            prediction,
            probabilities,
            score,
            latency_ms,
            stage_latency_ms,
            error_type,
            experiment_id,
            task,
        )

    def encode_prediction(
        self,
        prediction_id: str,
        model: str,
        version: str,
        unit_id: str,
        event_time: datetime,
        features: Mapping[str, Any] | None,
        prediction: Any,
        probabilities: Mapping[str, float] | None,
        score: float | None,
        latency_ms: float,
        stage_latency_ms: Mapping[str, float] | None,
        error_type: str | None,
        experiment_id: str | None,
        task: str,
    ) -> tuple[bytes, bytes]:
        """:meth:`encode` with positional arguments (the SDK's hot path).

        The checks run on the arguments themselves; any doubt (an unusual type, a name
        not seen before that fails its pattern) hands the event to the contract, which
        accepts it or names the invalid field.
        """
        if features is None:
            features = {}
        data: dict[str, Any] = {
            "prediction_id": prediction_id,
            "model": model,
            "version": version,
            "unit_id": unit_id,
            "event_time": event_time,
            "task": task,
            "features": features,
            "latency_ms": latency_ms,
        }
        fast = True
        try:
            if (model, version, task) not in self._models:
                fast = self._remember_model(model, version, task)
        except TypeError:  # an unhashable name: the contract will say why
            fast = False
        if fast and not (
            type(prediction_id) is str
            and 0 < len(prediction_id) <= _MAX_ID
            and prediction_id.isprintable()
            and " " not in prediction_id
            and (unit_id is prediction_id or _is_id(unit_id))
            and type(event_time) is datetime
            and (event_time.tzinfo is UTC or event_time.utcoffset() is not None)
            and _MIN_TIME <= event_time < _MAX_TIME
            and (type(latency_ms) is float or type(latency_ms) is int)
            and 0 <= latency_ms <= _MAX_LATENCY_MS
            and type(features) is dict
        ):
            fast = False
        if fast and features:
            values = features.values()
            if not (
                len(features) <= _MAX_FEATURES
                and (self._names.issuperset(features) or _remember(self._names, features, _is_name))
                and (
                    # a few features: one Python loop with the contract's exact rules
                    # (cheaper than two builtin passes up to ~16 values, measured)
                    _feature_values_ok(values)
                    if len(features) <= _LOOP_FEATURES
                    # many, all numbers: |x| summed is within the bound only if every |x|
                    # is, and a NaN or infinity makes it fail (stricter: a sum beyond
                    # 2**53 of values within it goes to the contract, which accepts it)
                    else sum(map(abs, values)) <= _MAX_ABS
                    if _NUMBER_TYPES.issuperset(map(type, values))
                    else _feature_values_ok(values)
                )
            ):
                fast = False
        if prediction is not None:
            data["prediction"] = prediction
            if fast and (
                not _is_target(prediction) or (task == "regression" and type(prediction) is str)
            ):
                fast = False
        elif error_type is None:
            fast = False
        if error_type is not None:
            data["error_type"] = error_type
            if fast and not (type(error_type) is str and _ERROR_TYPE(error_type)):
                fast = False
        if probabilities is not None:
            data["probabilities"] = probabilities
            if fast and not self._probabilities_ok(probabilities):
                fast = False
        if score is not None:
            data["score"] = score
            if fast and not (type(score) is float and -_MAX_ABS <= score <= _MAX_ABS):
                fast = False
        if stage_latency_ms is not None:
            data["stage_latency_ms"] = stage_latency_ms
            if fast and not _stages_ok(stage_latency_ms):
                fast = False
        if experiment_id is not None:
            data["experiment_id"] = experiment_id
            if fast and not _is_id(experiment_id):
                fast = False
        if fast:
            return prediction_id.encode(), bounded(_dumps(data), "prediction")
        event = _validate(PredictionLogged, data, "prediction")
        return event.prediction_id.encode(), bounded(encode_event(event), "prediction")

    def _remember_model(self, model: object, version: object, task: object) -> bool:
        if not (
            type(model) is str
            and _MODEL(model)
            and type(version) is str
            and _MODEL(version)
            and (task == "classification" or task == "regression")
            and type(task) is str
        ):
            return False
        if len(self._models) < _CACHE_LIMIT:
            self._models.add((model, version, task))
        return True

    def _probabilities_ok(self, p: object) -> bool:
        if type(p) is not dict:
            return False
        if not p:
            return True
        if len(p) > _MAX_CLASSES or not (
            self._classes.issuperset(p) or _remember(self._classes, p, _is_class_key)
        ):
            return False
        total = 0.0
        for v in p.values():  # NaN fails the comparison
            if type(v) is not float or not 0.0 <= v <= 1.0:
                return False
            total += v
        return abs(total - 1.0) <= _PROBABILITY_FAST_TOLERANCE

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
            return prediction_id.encode(), _dumps(data)
        event = _validate(LabelObserved, data, "label")
        return event.prediction_id.encode(), encode_event(event)


def bounded(value: bytes, what: str) -> bytes:
    """``value`` if it fits the contract's payload limit (every consumer dead-letters a
    larger record), else :class:`InvalidEventError` saying by how much it is over."""
    if len(value) > _MAX_PAYLOAD:
        raise InvalidEventError(
            f"{what}: the encoded event is {len(value)} bytes, the limit is {_MAX_PAYLOAD} "
            "(fewer or shorter features)"
        )
    return value


def _remember(cache: set[str], names: Mapping[Any, Any], valid: Callable[[object], bool]) -> bool:
    """Whether every key of ``names`` is ``valid``; valid keys are remembered (up to a
    bound), so the next call checks them with one set operation."""
    if not all(map(valid, names)):
        return False
    if len(cache) < _NAME_CACHE_LIMIT:
        cache.update(names)
    return True


def _feature_values_ok(values: Collection[object]) -> bool:
    """Feature values of mixed kinds: numbers within ``±max_abs_number`` (ints but not
    bools; floats but not NaN), None, or bounded strings."""
    for v in values:
        t = type(v)
        if t is float or t is int:
            if not -_MAX_ABS <= v <= _MAX_ABS:  # type: ignore[operator]  # NaN fails too
                return False
        elif not (v is None or (t is str and len(v) <= LIMITS.max_string_length)):  # type: ignore[arg-type]
            return False
    return True


def _stages_ok(s: object) -> bool:
    if type(s) is not dict:
        return False
    # a plain loop: half the cost of all() over a generator for the timer's 1-3 stages
    for k, v in s.items():
        if not (
            k in _STAGES and (type(v) is float or type(v) is int) and 0 <= v <= _MAX_LATENCY_MS
        ):
            return False
    return True


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
