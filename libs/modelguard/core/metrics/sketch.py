"""Mergeable summaries of a stream of non-negative numbers.

:class:`LogSketch` is a DDSketch-style quantile sketch with relative accuracy
``alpha``: values fall in logarithmic buckets ``(gamma^(i-1), gamma^i]`` with
``gamma = (1 + alpha) / (1 - alpha)``; a quantile is reported as the bucket's centre, so
it is within ``alpha`` (relative) of the exact order statistic
``sorted(x)[floor(q * (n - 1))]``. Two sketches merge exactly by adding bucket counts,
so per-partition sketches combine into the sketch of the whole stream. Buckets may be
added with a negative weight (removal), which keeps the last-N windows exact.

>>> s = LogSketch()
>>> for x in (1.0, 2.0, 3.0, 4.0, 100.0):
...     s.add(x)
>>> round(s.quantile(0.5), 1)
3.0
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ALPHA = 0.01
#: Values at or below this are counted in the zero bucket.
MIN_POSITIVE = 1e-9
_DEFAULT_LOG_GAMMA = math.log((1.0 + DEFAULT_ALPHA) / (1.0 - DEFAULT_ALPHA))
#: A sketch's sum is kept as an integer number of 2^-16 units: integer sums do not depend
#: on the order of adds and merges (float sums do, in the last bits), so a window rebuilt
#: from the same events in another interleaving is identical, and the float form is
#: exact up to 2^53 units (1.4e11, e.g. 1e8 values of 1000 ms).
TOTAL_SCALE = 65536


def default_bucket(x: float) -> int | None:
    """``LogSketch().bucket(x)`` (default ``alpha``), for values computed once and added
    to several sketches."""
    if x <= MIN_POSITIVE:
        return None
    return math.ceil(math.log(x) / _DEFAULT_LOG_GAMMA)


@dataclass(slots=True)
class LogSketch:
    """Quantile sketch with relative error ``alpha`` (see module docstring)."""

    alpha: float = DEFAULT_ALPHA
    counts: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    count: int = 0
    total_units: int = 0  # sum of the values in units of 1 / TOTAL_SCALE

    @property
    def total(self) -> float:
        return self.total_units / TOTAL_SCALE

    @property
    def _log_gamma(self) -> float:
        if self.alpha == DEFAULT_ALPHA:
            return _DEFAULT_LOG_GAMMA
        return math.log((1.0 + self.alpha) / (1.0 - self.alpha))

    def bucket(self, x: float) -> int | None:
        """Bucket index of ``x`` (None: the zero bucket)."""
        if x <= MIN_POSITIVE:
            return None
        return math.ceil(math.log(x) / self._log_gamma)

    def add(self, x: float, weight: int = 1) -> None:
        """Add ``x`` with ``weight`` (negative removes a value added before)."""
        self.add_bucket(self.bucket(x), x, weight)

    def add_bucket(self, index: int | None, x: float, weight: int = 1) -> None:
        """Add a value whose bucket is already known (saves a logarithm)."""
        if index is None:
            self.zero += weight
        else:
            c = self.counts.get(index, 0) + weight
            if c:
                self.counts[index] = c
            else:
                del self.counts[index]
        self.count += weight
        self.total_units += round(x * TOTAL_SCALE) * weight

    def merge(self, other: LogSketch, sign: int = 1) -> None:
        """Add ``other``'s counts (same ``alpha``) into this sketch (``sign=-1``:
        subtract a sketch of values added before)."""
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches with alpha {self.alpha} and {other.alpha}")
        for i, c in other.counts.items():
            n = self.counts.get(i, 0) + sign * c
            if n:
                self.counts[i] = n
            else:
                self.counts.pop(i, None)
        self.zero += sign * other.zero
        self.count += sign * other.count
        self.total_units += sign * other.total_units

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0 <= q <= 1); NaN when empty."""
        if self.count <= 0:
            return math.nan
        rank = math.floor(q * (self.count - 1))
        seen = self.zero
        if seen > rank:
            return 0.0
        gamma = (1.0 + self.alpha) / (1.0 - self.alpha)
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen > rank:
                return 2.0 * gamma**i / (gamma + 1.0)
        return 2.0 * gamma ** max(self.counts) / (gamma + 1.0)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "counts": {str(k): v for k, v in self.counts.items()},
            "zero": self.zero,
            "count": self.count,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogSketch:
        return cls(
            alpha=float(d["alpha"]),
            counts={int(k): int(v) for k, v in d["counts"].items()},
            zero=int(d["zero"]),
            count=int(d["count"]),
            total_units=round(float(d["total"]) * TOTAL_SCALE),
        )


@dataclass(slots=True)
class FixedHistogram:
    """Counts per fixed upper bound (Prometheus style, last bucket is +Inf); mergeable.

    >>> h = FixedHistogram.with_bounds((0.1, 1.0))
    >>> h.add(0.05); h.add(0.5); h.add(7.0)
    >>> h.counts, h.cumulative()
    ([1, 1, 1], [1, 2, 3])
    """

    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    @classmethod
    def with_bounds(cls, bounds: tuple[float, ...]) -> FixedHistogram:
        return cls(bounds=tuple(bounds), counts=[0] * (len(bounds) + 1))

    def add(self, x: float, weight: int = 1) -> None:
        # the first bound >= x (its index is len(bounds), the +Inf bucket, when none is)
        self.counts[bisect_left(self.bounds, x)] += weight
        self.total += x * weight

    def merge(self, other: FixedHistogram) -> None:
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different bounds")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    def cumulative(self) -> list[int]:
        out, run = [], 0
        for c in self.counts:
            run += c
            out.append(run)
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "total": self.total}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FixedHistogram:
        return cls(
            bounds=tuple(float(b) for b in d["bounds"]),
            counts=[int(c) for c in d["counts"]],
            total=float(d["total"]),
        )


@dataclass(slots=True)
class ExactSum:
    """A float sum without rounding error (Shewchuk's non-overlapping partials, as
    :func:`math.fsum`), so adding and later removing a huge value leaves the small ones
    intact, and any split of a stream sums to exactly the same value.

    >>> s = ExactSum()
    >>> for x in (1e16, 1.0, -1e16):
    ...     s.add(x)
    >>> s.value
    1.0
    """

    partials: list[float] = field(default_factory=list)

    def add(self, x: float) -> None:
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def merge(self, other: ExactSum, sign: int = 1) -> None:
        for x in other.partials:
            self.add(x if sign > 0 else -x)

    @property
    def value(self) -> float:
        return math.fsum(self.partials)

    def to_json(self) -> list[float]:
        """A canonical form of the exact sum (greedy: the rounded sum, then the rounded
        rest, ...): the same value gives the same list whatever the order of the adds
        (the partials themselves are not unique)."""
        out: list[float] = []
        rest = ExactSum(list(self.partials))
        while (v := math.fsum(rest.partials)) != 0.0:
            out.append(v)
            rest.add(-v)
        return out

    @classmethod
    def from_json(cls, raw: list[float]) -> ExactSum:
        s = cls()
        for x in raw:
            s.add(float(x))
        return s

    @classmethod
    def of(cls, values: list[float]) -> ExactSum:
        """The exact sum of ``values`` in one go (``math.fsum`` per term of the canonical
        form, see :meth:`to_json`): equal to adding them one by one, and cheaper.

        >>> ExactSum.of([1e16, 1.0, -1e16]).value, ExactSum.of([0.1] * 10).to_json()
        (1.0, [1.0, 5.551115123125783e-17])
        """
        rest = list(values)
        out = []
        while (v := math.fsum(rest)) != 0.0:
            out.append(v)
            rest.append(-v)
        return cls.from_json(out)
