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
    #: Longest class string (predicted class, label, probability key). With the class
    #: rules (no whitespace or control characters) every ``class_share.<class>`` metric
    #: key is a valid metric name (``max_name_length``).
    max_class_length: int = 64
    #: Largest magnitude of a number in a prediction, label, score or feature: 2**53,
    #: the range in which a float64 holds every integer exactly (a 400-digit integer or
    #: 1e200 would overflow sums of squares in a processor).
    max_abs_number: float = float(2**53)
    #: Event times must lie in [min_event_time, max_event_time) (Unix seconds, UTC):
    #: 1970-01-01 to 2100-01-01, so every window and id computed from them stays
    #: representable (``0001-01-01T00:00:00+01:00`` is valid ISO 8601, but not a time).
    min_event_time: float = 0.0
    max_event_time: float = 4_102_444_800.0


LIMITS = Limits()
