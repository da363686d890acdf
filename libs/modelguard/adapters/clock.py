"""The wall clock, in one place. The pure core never reads it: services and adapters
pass ``utc_now`` (or a test's fake clock) into the code that needs the time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
