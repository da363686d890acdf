"""Types shared by several control events."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)

from modelguard.contracts.base import BoundedStr, Event
from modelguard.contracts.limits import LIMITS

JsonScalar = StrictBool | StrictInt | StrictFloat | BoundedStr | None
Weight = Annotated[float, Field(ge=0.0, le=1.0)]


class Severity(IntEnum):
    """Ordered drift/incident severity; compare with ``>=``."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class WindowSpec(Event):
    """How a window is defined: event-time tumbling/hopping by seconds, or last-N by count."""

    schema_name = "window_spec"

    kind: Literal["tumbling", "hopping", "count"]
    length_seconds: float | None = Field(default=None, gt=0)
    count: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "count" and self.count is None:
            raise ValueError("a count window needs count")
        if self.kind != "count" and self.length_seconds is None:
            raise ValueError(f"a {self.kind} window needs length_seconds")
        return self


# -- bounds shared by the data-plane events (predictions, labels) --------------------------
#: Allowed characters of a class string: anything printable but whitespace.
CLASS_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
#: A class as a string (predicted class, label, probability key): 1 to
#: ``max_class_length`` characters, no whitespace or control characters.
ClassName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LIMITS.max_class_length, pattern=CLASS_PATTERN),
]
_MAX = LIMITS.max_abs_number
#: Integers and floats within ``±max_abs_number``.
BoundedInt = Annotated[StrictInt, Field(ge=-int(_MAX), le=int(_MAX))]
BoundedFloat = Annotated[StrictFloat, Field(ge=-_MAX, le=_MAX)]
LaxBoundedFloat = Annotated[float, Field(ge=-_MAX, le=_MAX)]
_MIN_TIME = datetime.fromtimestamp(LIMITS.min_event_time, tz=UTC)
_MAX_TIME = datetime.fromtimestamp(LIMITS.max_event_time, tz=UTC)


def event_time_in_range(value: datetime) -> bool:
    """Whether an aware datetime lies within the event-time bounds, compared in UTC."""
    try:
        return _MIN_TIME <= value < _MAX_TIME
    except OverflowError:  # pragma: no cover - aware comparisons do not overflow today
        return False


def _check_event_time(value: datetime) -> datetime:
    if not event_time_in_range(value):
        raise ValueError(
            f"event time must be in [{_MIN_TIME.isoformat()}, {_MAX_TIME.isoformat()}) UTC"
        )
    return value


#: An aware event time within ``[min_event_time, max_event_time)`` in UTC.
BoundedEventTime = Annotated[
    AwareDatetime,
    AfterValidator(_check_event_time),
    Field(
        description=(
            "Aware ISO 8601 time, in UTC within "
            f"[{_MIN_TIME.isoformat()}, {_MAX_TIME.isoformat()})."
        ),
        json_schema_extra={
            "formatMinimum": _MIN_TIME.isoformat(),
            "formatExclusiveMaximum": _MAX_TIME.isoformat(),
        },
    ),
]
