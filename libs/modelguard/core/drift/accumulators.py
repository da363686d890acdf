"""Window accumulators: mergeable histograms of a window of events.

A :class:`WindowAccumulator` counts, per column, the current window on the reference's
bins (plus missing values, type errors, out-of-range values, unseen categories). It is
a plain value that merges by addition, so partitions or workers can be combined
exactly; :mod:`modelguard.core.drift.evaluation` turns it into test results.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelguard.core.drift.reference import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    category_of,
    is_number,
    safe_float,
)

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
MAX_UNSEEN_TRACKED = 50
_FAST_NUMERIC = frozenset({float, int, type(None)})
_NUMBERS = frozenset({float, int})


def numeric_columns(
    rows: Sequence[Mapping[str, object]], names: Sequence[str], validated: bool = False
) -> FloatArray | None:
    """The values of the numeric features ``names`` of every row, one row of the
    result per feature (missing values NaN), when every value is a plain number or
    missing; None otherwise (a string, a bool, an absent key, an int no float can hold:
    the caller counts those column by column with :meth:`NumericAccumulator.add`).
    Values convert exactly as :meth:`NumericAccumulator.add` converts them.

    ``validated``: the rows are features of contract-checked predictions, whose values
    are ints, floats, strings or None (never bools or other number types), so one
    ``sum`` (which refuses strings and None) proves they are all numbers."""
    if not names or not rows or set(map(type, rows)) != {dict}:
        return None  # (a Mapping's ``[]`` may differ from ``get``: e.g. a defaultdict)
    get = operator.itemgetter(*names)
    try:
        picked = list(map(get, rows))
    except (KeyError, TypeError):
        return None
    count = len(rows) * len(names)

    def flat() -> Iterable[object]:
        return itertools.chain.from_iterable(picked) if len(names) > 1 else picked

    try:
        if validated:
            try:
                sum(flat())  # type: ignore[arg-type]
                numbers = True
            except TypeError:
                numbers = False
        else:
            numbers = set(map(type, flat())) <= _NUMBERS
        if numbers:
            x = np.fromiter(flat(), dtype=np.float64, count=count)
        elif set(map(type, flat())) <= _FAST_NUMERIC:
            x = np.asarray(list(flat()), dtype=np.float64)  # None becomes NaN: missing
        else:
            return None
    except OverflowError:  # an int beyond the float range
        return None
    return np.ascontiguousarray(x.reshape(len(rows), len(names)).T)


@dataclass
class NumericAccumulator:
    counts: npt.NDArray[np.int64]
    sums: npt.NDArray[np.float64]
    missing: int = 0
    type_errors: int = 0
    below: int = 0
    above: int = 0

    @classmethod
    def empty(cls, profile: NumericProfile) -> NumericAccumulator:
        return cls(np.zeros(profile.n_bins, np.int64), np.zeros(profile.n_bins))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, profile: NumericProfile, values: Sequence[object]) -> npt.NDArray[np.float64]:
        """Count ``values`` (raw feature values); returns the numeric ones."""
        kinds = set(map(type, values))
        if kinds <= _FAST_NUMERIC:  # the common case: numbers and missing values only
            n_none = values.count(None) if type(None) in kinds else 0
            raw = [v for v in values if v is not None] if n_none else values
            try:
                x = np.asarray(raw, dtype=np.float64)
            except OverflowError:  # an int beyond the float range: the careful path
                x = None
            if x is not None:
                self.missing += n_none
                finite = np.isfinite(x)
                if not finite.all():
                    self.missing += int(x.size - finite.sum())
                    x = x[finite]
                self._count(profile, x)
                return x
        present: list[float] = []
        for v in values:
            if is_number(v):
                f = safe_float(v)
                if f is not None:
                    present.append(f)
                elif isinstance(v, float):  # nan / inf: missing, as in the reference
                    self.missing += 1
                else:  # an int no float can hold: not a usable number
                    self.type_errors += 1
            elif v is None:
                self.missing += 1
            else:
                self.type_errors += 1
        x = np.asarray(present, dtype=np.float64)
        self._count(profile, x)
        return x

    def add_finite(
        self, profile: NumericProfile, x: FloatArray, bins: IntArray, missing: int = 0
    ) -> None:
        """Count finite values ``x`` whose reference bins (``profile.bin_of(x)``) are
        ``bins``, and ``missing`` missing values: what :meth:`add` does with them."""
        self.missing += missing
        self._count(profile, x, bins)

    def _count(
        self, profile: NumericProfile, x: npt.NDArray[np.float64], bins: IntArray | None = None
    ) -> None:
        if x.size:
            if bins is None:
                bins = profile.bin_of(x)
            self.counts += np.bincount(bins, minlength=profile.n_bins)
            with np.errstate(over="ignore", invalid="ignore"):
                self.sums += np.bincount(bins, weights=x, minlength=profile.n_bins)
            if not np.isfinite(self.sums).all():  # values near the float limit: saturate
                big = np.finfo(np.float64).max
                np.nan_to_num(self.sums, copy=False, nan=0.0, posinf=big, neginf=-big)
            self.below += int(np.count_nonzero(x < profile.minimum))
            self.above += int(np.count_nonzero(x > profile.maximum))

    def merge(self, other: NumericAccumulator) -> NumericAccumulator:
        return NumericAccumulator(
            self.counts + other.counts,
            self.sums + other.sums,
            self.missing + other.missing,
            self.type_errors + other.type_errors,
            self.below + other.below,
            self.above + other.above,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], profile: NumericProfile) -> NumericAccumulator:
        counts = np.asarray(d["counts"], dtype=np.int64)
        sums = np.asarray(d["sums"], dtype=np.float64)
        if counts.shape != (profile.n_bins,) or sums.shape != counts.shape:
            raise ValueError("numeric accumulator does not fit the reference's bins")
        return cls(
            counts,
            sums,
            int(d["missing"]),
            int(d["type_errors"]),
            int(d["below"]),
            int(d["above"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "missing": self.missing,
            "type_errors": self.type_errors,
            "below": self.below,
            "above": self.above,
        }


@dataclass
class CategoricalAccumulator:
    counts: npt.NDArray[np.int64]
    unseen: Counter[str] = field(default_factory=Counter)
    unseen_total: int = 0
    missing: int = 0
    type_errors: int = 0

    @classmethod
    def empty(cls, profile: CategoricalProfile) -> CategoricalAccumulator:
        return cls(np.zeros(len(profile.counts), np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + self.unseen_total

    def add(self, profile: CategoricalProfile, values: Sequence[object]) -> list[str]:
        """Count ``values``; floats are type errors (categories are strings or ints).
        Returns the category labels of the valid values."""
        index = profile.index
        other = len(profile.categories)
        labels: list[str] = []
        for v in values:
            if v is None:
                self.missing += 1
                continue
            if isinstance(v, float):
                self.type_errors += 1
                continue
            label = category_of(v)
            labels.append(label)
            i = index.get(label)
            if i is not None:
                self.counts[i] += 1
            elif profile.has_other:
                self.counts[other] += 1
            else:
                self.unseen_total += 1
                if label in self.unseen or len(self.unseen) < MAX_UNSEEN_TRACKED:
                    self.unseen[label] += 1
        return labels

    def merge(self, other: CategoricalAccumulator) -> CategoricalAccumulator:
        unseen = self.unseen + other.unseen
        return CategoricalAccumulator(
            self.counts + other.counts,
            Counter(dict(unseen.most_common(MAX_UNSEEN_TRACKED))),
            self.unseen_total + other.unseen_total,
            self.missing + other.missing,
            self.type_errors + other.type_errors,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], profile: CategoricalProfile) -> CategoricalAccumulator:
        counts = np.asarray(d["counts"], dtype=np.int64)
        if counts.shape != (len(profile.counts),):
            raise ValueError("categorical accumulator does not fit the reference's categories")
        return cls(
            counts,
            Counter({str(k): int(v) for k, v in d["unseen"].items()}),
            int(d["unseen_total"]),
            int(d["missing"]),
            int(d["type_errors"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "counts": self.counts.tolist(),
            "unseen": dict(self.unseen),
            "unseen_total": self.unseen_total,
            "missing": self.missing,
            "type_errors": self.type_errors,
        }


Accumulator = NumericAccumulator | CategoricalAccumulator


def add_values(acc: Accumulator, profile: ColumnProfile, values: Sequence[object]) -> None:
    """Count raw ``values`` into ``acc`` (which must match ``profile``'s kind)."""
    if isinstance(profile, NumericProfile):
        if isinstance(acc, NumericAccumulator):
            acc.add(profile, values)
        return
    if isinstance(acc, CategoricalAccumulator):
        acc.add(profile, values)


def accumulator_from_dict(d: Mapping[str, Any], profile: ColumnProfile) -> Accumulator:
    if isinstance(profile, NumericProfile) and d.get("kind") == "numeric":
        return NumericAccumulator.from_dict(d, profile)
    if isinstance(profile, CategoricalProfile) and d.get("kind") == "categorical":
        return CategoricalAccumulator.from_dict(d, profile)
    raise ValueError(f"accumulator kind {d.get('kind')!r} does not match the reference")


def empty_accumulator(profile: ColumnProfile) -> Accumulator:
    if isinstance(profile, NumericProfile):
        return NumericAccumulator.empty(profile)
    return CategoricalAccumulator.empty(profile)


@dataclass
class WindowAccumulator:
    """Everything counted over one window of one model version (mergeable)."""

    features: dict[str, Accumulator]
    outputs: dict[str, Accumulator]
    n_events: int = 0

    @classmethod
    def empty(cls, reference: ReferenceProfile) -> WindowAccumulator:
        return cls(
            {k: empty_accumulator(p) for k, p in reference.features.items()},
            {k: empty_accumulator(p) for k, p in reference.outputs.items()},
        )

    def merge(self, other: WindowAccumulator) -> WindowAccumulator:
        def m(a: dict[str, Accumulator], b: dict[str, Accumulator]) -> dict[str, Accumulator]:
            out = dict(a)
            for k, v in b.items():
                out[k] = out[k].merge(v) if k in out else v  # type: ignore[arg-type]
            return out

        return WindowAccumulator(
            m(self.features, other.features),
            m(self.outputs, other.outputs),
            self.n_events + other.n_events,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], reference: ReferenceProfile) -> WindowAccumulator:
        """The inverse of :meth:`to_dict` against the same reference."""
        if set(d["features"]) != set(reference.features) or set(d["outputs"]) != set(
            reference.outputs
        ):
            raise ValueError("window accumulator columns do not match the reference")
        return cls(
            {k: accumulator_from_dict(v, reference.features[k]) for k, v in d["features"].items()},
            {k: accumulator_from_dict(v, reference.outputs[k]) for k, v in d["outputs"].items()},
            int(d["n_events"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
        }
