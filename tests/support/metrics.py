"""Closed metric windows as comparable values (two runs of the metrics processor agree
when these lists are equal)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from modelguard.core.metrics.processor import ClosedWindow


def comparable(
    closed: Iterable[ClosedWindow], kind: str | None = None
) -> list[tuple[str, str, str]]:
    """(event id, aggregate, metrics) of every closed window (only ``kind`` ones when
    given), sorted, the aggregate and metrics as canonical JSON."""
    return sorted(
        (
            w.event_id,
            json.dumps(w.aggregate.to_dict(), sort_keys=True),
            json.dumps(w.metrics, sort_keys=True),
        )
        for w in closed
        if kind is None or w.kind == kind
    )
