"""Dead-letter records: the untouched original bytes plus why and where they failed.

The record value is the original payload, byte for byte, and its key the original key,
so a fixed consumer can replay it. The reason and origin travel in headers named
``dlq.*``; :class:`DeadLetter` is their typed view.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from modelguard.contracts.base import Event, EventTime

HEADER_PREFIX = "dlq."


class DeadLetter(Event):
    """Metadata of one dead-lettered message (carried in Kafka headers)."""

    schema_name = "dead_letter"

    reason: str = Field(max_length=4096)
    error_kind: str = Field(max_length=64)
    stage: str = Field(max_length=128, description="Which service rejected it.")
    source_topic: str = Field(max_length=249)
    source_partition: int = Field(ge=-1)
    source_offset: int = Field(ge=-1)
    failed_at: EventTime

    def to_headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers for this record."""
        data = self.model_dump(mode="json")
        return [(HEADER_PREFIX + k, str(v).encode()) for k, v in data.items()]

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes | None]] | None) -> DeadLetter:
        """Parse the ``dlq.*`` headers of a dead-letter record."""
        fields = {
            k[len(HEADER_PREFIX) :]: (v or b"").decode()
            for k, v in headers or []
            if k.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields, strict=False)
