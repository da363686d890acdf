"""A cheap decode of predictions and labels into plain field tuples, with the contract's
exact acceptance (the metrics processor's hot path, issue 15).

:func:`decode_event` builds a pydantic model per record (strict JSON, every rule of
:class:`~modelguard.contracts.predictions.PredictionLogged`), and the metrics processor
then reads a handful of its fields. Here the payload is parsed once with ``orjson`` and
checked field by field with builtins against the same rules (the same constants:
``LIMITS``, the same patterns), giving the fields the processor reads as a tuple
(:data:`PredictionFields`, :data:`LabelFields`), the event time already as Unix seconds.

The fast path only ever *accepts*: a payload it is not sure about (any backslash, a
non-ASCII identifier or class, an unusual time format, a value out of bounds, an
unknown key, a bool where a number is expected, invalid JSON, ...) goes to
:func:`decode_event`, which accepts it (then the model's fields are returned) or raises
the same :class:`~modelguard.contracts.codec.DecodeError` as everywhere else. So the
result, accepted or not and the reason, is the contract's by construction wherever the
fast path is unsure, and a property test checks that whatever the fast path accepts the
contract accepts with equal fields.

Rules the fast path checks itself (anything else falls back):

* strict JSON (``orjson``: no NaN/Infinity, valid UTF-8) with no backslash, an object
  with no duplicate key (the ``":`` count of :mod:`.codec` equals the keys decoded);
* no unknown key, every required key present, ``null`` only where a field is optional;
* identifiers: ASCII, 1 to ``max_id_length`` characters, printable, no space; model,
  version, error type and feature names: the contract's patterns (checked once per
  distinct value and remembered in bounded sets);
* numbers: ``int`` (never ``bool``) or ``float`` within ``±max_abs_number`` where the
  contract bounds them; float fields given a JSON integer become floats, as pydantic's
  strict mode does; probabilities in [0, 1] summing to 1 within the contract's
  tolerance; class strings ASCII, 1 to ``max_class_length`` characters, no space;
* event time ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`` (or ``+00:00``), a real calendar date
  within ``[min_event_time, max_event_time)``; its Unix time computed as
  ``datetime.timestamp()`` does (integer microseconds over 10**6).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date
from typing import Any, cast, get_args

import orjson

from modelguard.contracts.codec import DecodeError, decode_event
from modelguard.contracts.limits import LIMITS, Limits
from modelguard.contracts.predictions import (
    _PROBABILITY_SUM_TOLERANCE,
    LabelObserved,
    PredictionLogged,
)
from modelguard.contracts.telemetry import Stage

#: (prediction_id, model, version, event time as Unix seconds, task, prediction,
#: probabilities, latency_ms, stage_latency_ms, error_type)
PredictionFields = tuple[
    str,
    str,
    str,
    float,
    str,
    Any,
    dict[str, float] | None,
    float,
    dict[str, float] | None,
    str | None,
]
#: (prediction_id, model or None, label, event time as Unix seconds)
LabelFields = tuple[str, str | None, Any, float]

_MAX = LIMITS.max_abs_number
_MAX_INT = int(_MAX)
_MAX_ID = LIMITS.max_id_length
_MAX_CLASS = LIMITS.max_class_length
_MAX_NAME = LIMITS.max_name_length
_MAX_STR = LIMITS.max_string_length
_MAX_FEATURES = LIMITS.max_features
_MAX_CLASSES = LIMITS.max_classes
_MIN_US = int(LIMITS.min_event_time) * 10**6
_MAX_US = int(LIMITS.max_event_time) * 10**6
_MAX_LATENCY_MS = 3_600_000.0  # PredictionLogged.latency_ms: le
_STAGES = frozenset(get_args(Stage))
_TASKS = frozenset({"classification", "regression"})
_WHITESPACE = b" \t\n\r"
_PREDICTION_KEYS = frozenset(PredictionLogged.model_fields)
_PREDICTION_REQUIRED = frozenset(
    k for k, f in PredictionLogged.model_fields.items() if f.is_required()
)
_LABEL_KEYS = frozenset(LabelObserved.model_fields)
_LABEL_REQUIRED = frozenset(k for k, f in LabelObserved.model_fields.items() if f.is_required())
#: The contract's patterns (``contracts.base`` / ``contracts.predictions``), as fullmatch.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]*")
#: Distinct names remembered as valid (model/version, error types, feature names) before
#: the sets are cleared (bounded memory whatever the producers send).
_MAX_REMEMBERED_NAMES = 4096
_names: set[str] = set()
_error_types: set[str] = set()
_feature_names: set[str] = set()
_seconds: dict[str, int] = {}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NO_FEATURES: dict[str, Any] = {}


def _make_room(cache: set[str] | dict[str, int]) -> None:
    """Clear a cache of values known valid once it holds ``_MAX_REMEMBERED_NAMES``."""
    if len(cache) >= _MAX_REMEMBERED_NAMES:
        cache.clear()


def _remember(cache: set[str], names: Iterable[str]) -> None:
    """Add ``names`` (all checked valid) to ``cache``, within its bound."""
    _make_room(cache)
    cache.update(names)


def _model_name(s: object) -> bool:
    if s in _names:
        return True
    if type(s) is not str or len(s) > _MAX_ID or not s.isascii() or not _MODEL_NAME.fullmatch(s):
        return False
    _remember(_names, (s,))
    return True


def _identifier(s: object) -> bool:
    return (
        type(s) is str
        and 0 < len(s) <= _MAX_ID
        and s.isascii()
        and s.isprintable()
        and " " not in s
    )


def _class_name(s: str) -> bool:
    return 0 < len(s) <= _MAX_CLASS and s.isascii() and s.isprintable() and " " not in s


def _target(v: object) -> bool:
    """A prediction or label: bounded int (not bool), bounded float, class string."""
    t = type(v)
    if t is int:
        return -_MAX_INT <= v <= _MAX_INT  # type: ignore[operator]
    if t is float:
        return -_MAX <= v <= _MAX  # type: ignore[operator]
    return t is str and _class_name(v)  # type: ignore[arg-type]


def _event_time(s: object) -> float | None:
    """Unix seconds of a canonical UTC time string, or None (undecided)."""
    if type(s) is not str or len(s) < 20 or not s.isascii():
        return None
    if s[-1] == "Z":
        body = len(s) - 1
    elif s.endswith("+00:00"):
        body = len(s) - 6
    else:
        return None
    whole = _seconds.get(s[:19])  # the time to the second: shared by many events
    if whole is None:
        whole = _whole_seconds(s[:19])
        if whole is None:
            return None
    if body == 19:
        us = 0
    else:
        frac = s[20:body]
        if s[19] != "." or not 0 < len(frac) <= 6 or not frac.isdigit():
            return None
        us = int(frac) * _FRACTION_SCALE[len(frac)]
    total = whole * 10**6 + us
    if total >= _MAX_US:
        return None
    return total / 10**6  # as datetime.timestamp(): integer microseconds over 10**6


#: Microseconds per unit of a fraction with 1..6 digits.
_FRACTION_SCALE = (0, 100_000, 10_000, 1000, 100, 10, 1)


def _whole_seconds(s: str) -> int | None:
    """Unix seconds of ``YYYY-MM-DDTHH:MM:SS`` (a real date and time at or after the
    minimum event time), remembered; None when not exactly that."""
    if (
        len(s) != 19
        or s[4] != "-"
        or s[7] != "-"
        or s[10] != "T"
        or s[13] != ":"
        or s[16] != ":"
        or not (s[:4] + s[5:7] + s[8:10] + s[11:13] + s[14:16] + s[17:19]).isdigit()
    ):
        return None
    h, m, sec = int(s[11:13]), int(s[14:16]), int(s[17:19])
    if h > 23 or m > 59 or sec > 59:
        return None
    try:
        days = date(int(s[:4]), int(s[5:7]), int(s[8:10])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    whole = days * 86400 + h * 3600 + m * 60 + sec
    if whole * 10**6 < _MIN_US:
        return None
    _make_room(_seconds)
    _seconds[s] = whole
    return whole


_NUMBER_TYPES = frozenset({int, float})
_FEATURE_TYPES = frozenset({int, float, str, type(None)})


def _new_feature_names(names: dict[str, Any]) -> bool:
    """Whether all ``names`` are contract feature names (``Name``), remembering them."""
    for name in names:
        if not 0 < len(name) <= _MAX_NAME or not name.isascii() or not name.isprintable():
            return False
        if " " in name:
            return False
    _remember(_feature_names, names)
    return True


def _bounded_features(values: Any) -> bool:
    """Feature values of mixed kinds (int/float/str/None) within the contract's bounds."""
    for v in values:
        t = type(v)
        if t is str:
            if len(v) > _MAX_STR:
                return False
        elif v is not None and not -_MAX <= v <= _MAX:
            return False
    return True


_FLOAT = {float}
_class_names: set[str] = set()


def _new_class_names(names: dict[str, Any]) -> bool:
    """Whether all ``names`` are contract class strings, remembering them."""
    for name in names:
        if not _class_name(name):
            return False
    _remember(_class_names, names)
    return True


def _keys_match(raw: bytes, keys: int) -> bool:
    """No duplicate key (see :mod:`.codec`: without backslashes each ``":`` closes a key
    or over-counts)."""
    return raw.translate(None, _WHITESPACE).count(b'":') == keys


def _number(v: object) -> float | None:
    """A JSON number as a float field takes it (int -> float), or None."""
    t = type(v)
    if t is float:
        return v  # type: ignore[return-value]
    if t is int:
        return float(v)  # type: ignore[arg-type]
    return None


def _object(raw: bytes, required: frozenset[str], allowed: frozenset[str]) -> dict[str, Any] | None:
    """``raw`` as a JSON object with every ``required`` key and only ``allowed`` ones, or
    None (escapes and anything else are left to the contract's decoder)."""
    if b"\\" in raw:
        return None
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(d) is not dict or not required <= d.keys() <= allowed:
        return None
    return d


def _fast_prediction(raw: bytes) -> PredictionFields | None:
    """The fields of a prediction the fast path is sure about, else None."""
    d = _object(raw, _PREDICTION_REQUIRED, _PREDICTION_KEYS)
    if d is None:
        return None
    get = d.get
    pid = d["prediction_id"]
    model = d["model"]
    version = d["version"]
    if not (model in _names or _model_name(model)) or not (
        version in _names or _model_name(version)
    ):
        return None
    if not (_identifier(pid) and _identifier(d["unit_id"])):
        return None
    experiment = get("experiment_id")
    if experiment is not None and not _identifier(experiment):
        return None
    t = _event_time(d["event_time"])
    if t is None:
        return None
    task = get("task", "classification")
    if task not in _TASKS:
        return None
    keys = len(d)
    features = get("features", _NO_FEATURES)  # absent: the default, an empty dict
    if features is not _NO_FEATURES:
        if type(features) is not dict or len(features) > _MAX_FEATURES:
            return None
        if not _feature_names.issuperset(features) and not _new_feature_names(features):
            return None
        values = features.values()
        kinds = set(map(type, values))
        if kinds <= _NUMBER_TYPES:  # all numbers (the usual case): one min and one max
            if values and not (min(values) >= -_MAX and max(values) <= _MAX):
                return None
        elif not kinds <= _FEATURE_TYPES or not _bounded_features(values):
            return None
        keys += len(features)
    prediction = get("prediction")
    error_type = get("error_type")
    if error_type is not None:
        if error_type not in _error_types:
            if (
                type(error_type) is not str
                or len(error_type) > 64
                or not error_type.isascii()
                or not _ERROR_TYPE.fullmatch(error_type)
            ):
                return None
            _remember(_error_types, (error_type,))
    elif prediction is None:
        return None  # the contract's "prediction is required unless error_type is set"
    if prediction is not None:
        if not _target(prediction):
            return None
        if task == "regression" and type(prediction) is str:
            return None
    probabilities = get("probabilities")
    if probabilities is not None:
        if type(probabilities) is not dict or len(probabilities) > _MAX_CLASSES:
            return None
        if not _class_names.issuperset(probabilities) and not _new_class_names(probabilities):
            return None
        values = probabilities.values()
        kinds = set(map(type, values))
        if not kinds <= _NUMBER_TYPES:
            return None
        if values and not (min(values) >= 0.0 and max(values) <= 1.0):
            return None
        if kinds != _FLOAT:  # a JSON integer where a float is expected: as a float
            probabilities = {c: float(p) for c, p in probabilities.items()}
        if probabilities and (
            abs(math.fsum(probabilities.values()) - 1.0) > _PROBABILITY_SUM_TOLERANCE
        ):
            return None
        keys += len(probabilities)
    score = get("score")
    if score is not None and (type(score) not in (int, float) or not -_MAX <= score <= _MAX):
        return None
    latency = _number(d["latency_ms"])
    if latency is None or not 0.0 <= latency <= _MAX_LATENCY_MS:
        return None
    stages = get("stage_latency_ms")
    if stages is not None:
        if type(stages) is not dict:
            return None
        converted: dict[str, float] = {}
        for stage, ms in stages.items():
            x = _number(ms)
            if x is None or stage not in _STAGES or not 0.0 <= x < math.inf:
                return None
            converted[stage] = x
        stages = converted
        keys += len(stages)
    if not _keys_match(raw, keys):
        return None
    return (pid, model, version, t, task, prediction, probabilities, latency, stages, error_type)


def _fast_label(raw: bytes) -> LabelFields | None:
    """The fields of a label the fast path is sure about, else None."""
    d = _object(raw, _LABEL_REQUIRED, _LABEL_KEYS)
    if d is None:
        return None
    pid = d["prediction_id"]
    model = d.get("model")
    value = d["label"]
    if not _identifier(pid) or (model is not None and not _model_name(model)):
        return None
    if not _target(value):
        return None
    t = _event_time(d["event_time"])
    if t is None or not _keys_match(raw, len(d)):
        return None
    return (pid, model, value, t)


def prediction_fields(e: PredictionLogged) -> PredictionFields:
    """The fields of a decoded prediction, as the fast path gives them."""
    return (
        e.prediction_id,
        e.model,
        e.version,
        e.event_time.timestamp(),
        e.task,
        e.prediction,
        e.probabilities,
        e.latency_ms,
        cast("dict[str, float] | None", e.stage_latency_ms),
        e.error_type,
    )


def label_fields(e: LabelObserved) -> LabelFields:
    """The fields of a decoded label, as the fast path gives them."""
    return (e.prediction_id, e.model, e.label, e.event_time.timestamp())


def decode_prediction_fields(raw: bytes | None, limits: Limits = LIMITS) -> PredictionFields:
    """:func:`decode_event` as ``PredictionLogged``, returning its fields (fast path
    first; raises the same :class:`DecodeError`)."""
    if raw is not None and len(raw) <= limits.max_payload_bytes:
        fields = _fast_prediction(raw)
        if fields is not None:
            return fields
    return prediction_fields(decode_event(PredictionLogged, raw, limits))


def decode_label_fields(raw: bytes | None, limits: Limits = LIMITS) -> LabelFields:
    """:func:`decode_event` as ``LabelObserved``, returning its fields (fast path first;
    raises the same :class:`DecodeError`)."""
    if raw is not None and len(raw) <= limits.max_payload_bytes:
        fields = _fast_label(raw)
        if fields is not None:
            return fields
    return label_fields(decode_event(LabelObserved, raw, limits))


__all__ = [
    "DecodeError",
    "LabelFields",
    "PredictionFields",
    "decode_label_fields",
    "decode_prediction_fields",
    "label_fields",
    "prediction_fields",
]
