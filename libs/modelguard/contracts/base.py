"""Shared pydantic base and constrained field types for all events."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from modelguard.contracts.limits import LIMITS

#: Model and version names: short, printable, usable as Prometheus label values and
#: Redis key parts.
ModelName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=LIMITS.max_id_length),
]
VersionName = ModelName
#: Opaque identifiers (prediction ids, unit ids, event ids).
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=LIMITS.max_id_length, pattern=r"^[^\s]+$")
]
#: Feature and metric names.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LIMITS.max_name_length, pattern=r"^[^\s]+$"),
]
#: A bounded free-text string value.
BoundedStr = Annotated[str, StringConstraints(max_length=LIMITS.max_string_length)]
EventTime = AwareDatetime
NonNegative = Annotated[float, Field(ge=0.0)]


class Event(BaseModel):
    """Base of every event: immutable, unknown fields rejected, NaN/inf rejected.

    ``schema_name`` is the stable name of the event in ``schemas/`` and in the
    ``event_type`` header of Kafka records; ``schema_version`` bumps on breaking change.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=False,
        ser_json_inf_nan="null",
    )

    schema_name: ClassVar[str] = "event"
    schema_version: ClassVar[int] = 1

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema of this event, with its name and version in ``$id``/title."""
        schema = cls.model_json_schema(mode="validation")
        schema["$id"] = (
            f"https://modelguard.dev/schemas/{cls.schema_name}.v{cls.schema_version}.json"
        )
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        return schema
