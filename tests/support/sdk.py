"""The SDK encoder in tests: a valid prediction's arguments, and the oracle that the
encoder accepts exactly what the event contract accepts, producing the same event."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from modelguard.contracts.codec import decode_event
from modelguard.sdk import InvalidEventError

T = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
#: ``PredictionEncoder.encode`` arguments of a valid prediction (features: each test's)
PREDICTION_ARGS: dict[str, Any] = {
    "prediction_id": "p1",
    "model": "fraud",
    "version": "v2",
    "unit_id": "u1",
    "event_time": T,
    "prediction": 1,
    "probabilities": {"0": 0.25, "1": 0.75},
    "latency_ms": 4.0,
}


def agrees(
    contract: type[BaseModel], encode: Callable[..., tuple[bytes, bytes]], args: dict[str, Any]
) -> None:
    """``encode(**args)`` accepts ``args`` exactly when ``contract`` does, with the same
    event, as strict JSON (no NaN)."""
    what = contract.__name__
    try:
        expected: BaseModel | None = contract.model_validate(args)
    except ValidationError:
        expected = None
    try:
        _, value = encode(**args)
    except InvalidEventError:
        assert expected is None, f"the SDK rejected a valid {what}: {args}"
        return
    assert expected is not None, f"the SDK accepted an invalid {what}: {args}"
    assert decode_event(contract, value) == expected  # type: ignore[type-var]
    json.loads(value)
