"""Dead-letter records: the untouched original bytes plus why and where they failed.

The record value is the original payload, byte for byte, and its key the original key,
so a fixed consumer can replay it. The reason and origin travel in headers named
``dlq.*``; :class:`DeadLetter` is their typed view.

A payload larger than :data:`MAX_DEAD_LETTER_VALUE_BYTES` (it would exceed the producer's
or the broker's message size limit) is stored truncated to that many bytes, with
``truncated``, ``original_size`` and ``original_sha256`` telling what it was. An event
that a processor failed on (stage :data:`PROCESS_STAGE`) carries the exception's type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import Field

from modelguard.contracts.base import Event, EventTime

HEADER_PREFIX = "dlq."
#: Stage of a dead letter whose event was valid but made a processor raise.
PROCESS_STAGE = "process"
#: Error kind of such a dead letter.
PROCESS_ERROR = "process_error"
#: Largest dead-letter value kept whole: below Kafka's default 1,000,000-byte message
#: limit with room for the key and the ``dlq.*`` headers.
MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024


class DeadLetter(Event):
    """Metadata of one dead-lettered message (carried in Kafka headers)."""

    schema_name = "dead_letter"

    reason: str = Field(max_length=4096)
    error_kind: str = Field(max_length=64)
    stage: str = Field(
        max_length=128,
        description="Which service rejected it, or 'process' when a processor raised.",
    )
    source_topic: str = Field(max_length=249)
    source_partition: int = Field(ge=-1)
    source_offset: int = Field(ge=-1)
    failed_at: EventTime
    service: str | None = Field(
        default=None, max_length=128, description="The service whose processor raised."
    )
    exception_type: str | None = Field(
        default=None, max_length=256, description="Type of the exception a processor raised."
    )
    truncated: bool = Field(default=False, description="The value holds a prefix only.")
    original_size: int | None = Field(
        default=None, ge=0, description="Size in bytes of the original value (if truncated)."
    )
    original_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the original value (if truncated).",
    )

    def to_headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers for this record."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        return [
            (HEADER_PREFIX + k, (json.dumps(v) if isinstance(v, bool) else str(v)).encode())
            for k, v in data.items()
        ]

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes | None]] | None) -> DeadLetter:
        """Parse the ``dlq.*`` headers of a dead-letter record."""
        fields = {
            k[len(HEADER_PREFIX) :]: (v or b"").decode()
            for k, v in headers or []
            if k.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields, strict=False)
