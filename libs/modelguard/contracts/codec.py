"""JSON encoding of events, and decoding with edge validation and readable errors.

JSON only (never pickle). NaN/Infinity are rejected on the way in and never written.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from modelguard.contracts.base import Event
from modelguard.contracts.limits import LIMITS, Limits

E = TypeVar("E", bound=Event)


class DecodeError(ValueError):
    """An event that cannot be accepted; ``reason`` is short and names the field.

    ``kind`` classifies the failure for metrics: ``too_large``, ``not_json``,
    ``invalid``.
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
    """
    if raw is None:
        raise DecodeError("invalid", "empty message (null value)")
    if len(raw) > limits.max_payload_bytes:
        raise DecodeError(
            "too_large", f"payload is {len(raw)} bytes, limit is {limits.max_payload_bytes}"
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise DecodeError("not_json", f"not valid JSON: {exc.errors()[0]['msg']}") from None
        raise DecodeError("invalid", format_validation_error(exc)) from None
