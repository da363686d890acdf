"""Small statistics shared by the benchmark scripts (imported as a sibling module: the
scripts run as ``python benchmarks/bench_*.py``, which puts this folder on the path)."""

from __future__ import annotations

import math


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson score interval of the proportion ``k / n``, rounded to 4 places."""
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]
