"""JSON encoding of events, and decoding with edge validation and readable errors.

JSON only (never pickle). NaN/Infinity are rejected on the way in and never written.

Decoding is strict: numbers and booleans are taken only as JSON numbers and booleans
(``"12.5"`` is not a number, ``true`` is not 1; pydantic strict mode), and an object
with the same key twice is rejected instead of keeping the last value.

The duplicate-key check is on the hot path, so it has a fast path of two byte scans: in
a payload without backslashes a quote inside a string is impossible, so once JSON
whitespace is deleted each ``":`` closes a key (or opens a string that starts with
``:``, an over-count), and their number is at least the number of keys in the payload;
the decoded event tells how many distinct keys it was given (its ``model_fields_set``
and the sizes of its mappings of scalars). Equal counts mean no key was dropped. Any
other payload (backslashes, nested models, a mismatch) is checked exactly with
``json.loads`` and an ``object_pairs_hook``.
"""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from modelguard.contracts.base import Event
from modelguard.contracts.limits import LIMITS, Limits
from modelguard.errors import InvalidInputError

E = TypeVar("E", bound=Event)


class DecodeError(InvalidInputError):
    """An event that cannot be accepted; ``reason`` is short and names the field.

    ``kind`` classifies the failure for metrics: ``too_large``, ``not_json``,
    ``duplicate_key``, ``invalid``.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def encode_event(event: Event) -> bytes:
    """Serialize an event to compact UTF-8 JSON."""
    return event.model_dump_json(exclude_none=False).encode()


def format_validation_error(error: ValidationError, limit: int = 5) -> str:
    """Render pydantic errors as ``field.path: message; ...`` (at most ``limit``)."""
    parts: list[str] = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in item["loc"]) or "<event>"
        parts.append(f"{loc}: {item['msg']}")
    extra = error.error_count() - limit
    if extra > 0:
        parts.append(f"... and {extra} more")
    return "; ".join(parts)


def decode_event(model: type[E], raw: bytes | None, limits: Limits = LIMITS) -> E:
    """Validate raw bytes as ``model`` or raise :class:`DecodeError`.

    >>> from modelguard.contracts.predictions import LabelObserved
    >>> decode_event(LabelObserved, b'{"prediction_id": "p1", "label": 1,'
    ...              b' "event_time": "2026-01-01T00:00:00Z"}').label
    1
    >>> decode_event(LabelObserved, b'{"prediction_id": "p1"}')
    Traceback (most recent call last):
    ...
    modelguard.contracts.codec.DecodeError: label: Field required; event_time: Field required
    >>> decode_event(LabelObserved, b'{"prediction_id": "p1", "label": 1, "label": 0,'
    ...              b' "event_time": "2026-01-01T00:00:00Z"}')
    Traceback (most recent call last):
    ...
    modelguard.contracts.codec.DecodeError: duplicate key 'label' in a JSON object
    """
    if raw is None:
        raise DecodeError("invalid", "empty message (null value)")
    if len(raw) > limits.max_payload_bytes:
        raise DecodeError(
            "too_large", f"payload is {len(raw)} bytes, limit is {limits.max_payload_bytes}"
        )
    try:
        event = model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise DecodeError("not_json", f"not valid JSON: {exc.errors()[0]['msg']}") from None
        raise DecodeError("invalid", format_validation_error(exc)) from None
    if not _no_duplicate_keys_fast(raw, event):
        _check_duplicate_keys(raw)
    return event


#: JSON whitespace, deleted before counting (``"a" : 1`` has a key too).
_WHITESPACE = b" \t\n\r"
#: Per event class: its fields holding a mapping of scalars (counted with ``len``) and
#: whether any field may hold other containers (then the fast path gives up).
_KEY_PLANS: dict[type[BaseModel], tuple[tuple[str, ...], bool]] = {}


def _scalar(annotation: Any) -> bool:
    """True when ``annotation`` holds no mapping, sequence or model."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, UnionType, Literal):
        return origin is Literal or all(_scalar(a) for a in get_args(annotation))
    if origin is not None:
        return False
    return not (isinstance(annotation, type) and issubclass(annotation, BaseModel | dict | list))


def _plan(model: type[BaseModel]) -> tuple[tuple[str, ...], bool]:
    plan = _KEY_PLANS.get(model)
    if plan is None:
        flat: list[str] = []
        simple = True
        for name, field in model.model_fields.items():
            if _scalar(field.annotation):
                continue
            args = [a for a in get_args(field.annotation) if a is not type(None)]
            mapping = args[0] if get_origin(field.annotation) in (Union, UnionType) else None
            target = field.annotation if mapping is None or len(args) != 1 else mapping
            if get_origin(target) is dict and _scalar(get_args(target)[1]):
                flat.append(name)
            else:
                simple = False
        plan = _KEY_PLANS[model] = (tuple(flat), simple)
    return plan


def _no_duplicate_keys_fast(raw: bytes, event: BaseModel) -> bool:
    """True when ``raw`` (which decoded to ``event``) surely has no duplicate key;
    False when undecided."""
    flat, simple = _plan(type(event))
    if not simple or b"\\" in raw:
        return False
    keys = len(event.model_fields_set)
    for name in flat:
        value = getattr(event, name)
        if value:
            keys += len(value)
    # without backslashes a quote inside a string is impossible, so each '":' closes a
    # key or opens a string starting with ':' (an over-count, which only sends the
    # payload to the exact check)
    return raw.translate(None, _WHITESPACE).count(b'":') == keys


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DecodeError("duplicate_key", f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _check_duplicate_keys(raw: bytes) -> None:
    """Raise :class:`DecodeError` (``duplicate_key``) if an object of ``raw`` repeats a key."""
    try:
        json.loads(raw, object_pairs_hook=_reject_duplicates)
    except DecodeError:
        raise
    except ValueError as exc:  # valid for pydantic but not for json (e.g. huge numbers)
        raise DecodeError("not_json", f"not valid JSON: {exc}") from None
