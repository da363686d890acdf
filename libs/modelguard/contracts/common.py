"""Types shared by several control events."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from modelguard.contracts.base import BoundedStr, Event

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
