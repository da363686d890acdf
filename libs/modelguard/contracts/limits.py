"""Size limits enforced at the edge, so one bad producer cannot exhaust a consumer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds applied when validating events.

    The defaults fit real models comfortably (hundreds of features) while bounding the
    memory a single message can cost a stream processor.
    """

    max_payload_bytes: int = 64 * 1024
    max_features: int = 512
    max_name_length: int = 128
    max_string_length: int = 1024
    max_classes: int = 1000
    max_id_length: int = 128


LIMITS = Limits()
