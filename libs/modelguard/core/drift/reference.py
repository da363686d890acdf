"""Reference distributions: what "no drift" looks like for one model (and version).

A :class:`ReferenceProfile` is built once, from a file (``modelguard drift``) or from a
warm-up window of live traffic, and then shared by every worker (Redis, see
``adapters.drift_store``). It is a plain JSON value; its ``reference_id`` is a hash of
its content, so a worker can tell at once whether it tests against the same reference.

Numeric features keep a fine histogram on reference quantiles (100 bins by default;
every bin holds reference mass, ties collapse bins), the mean value per bin, range and
moments. Categorical features keep the counts of up to ``max_categories`` categories
plus an "other" bucket for the rest. The model outputs (predicted class, confidence,
regression output) are profiled the same way under the names in :data:`OUTPUT_NAMES`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

#: Output channels profiled next to the features (kind "prediction" in signals).
OUTPUT_NAMES = ("prediction", "confidence")
FORMAT_VERSION = 1


class ReferenceDataError(ValueError):
    """A reference that cannot be built or read; the message says which feature/field."""


@dataclass(frozen=True)
class NumericProfile:
    """Histogram of a numeric column on reference-quantile bins.

    Bin ``b`` holds values in ``[edges[b-1], edges[b])`` (``searchsorted(..., "right")``);
    the first and last bins are open-ended, so out-of-range values land there too.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    bin_means: tuple[float, ...]
    n: int
    missing: int
    minimum: float
    maximum: float
    mean: float
    std: float
    kind: Literal["numeric"] = "numeric"

    def bin_of(self, values: npt.ArrayLike) -> npt.NDArray[np.intp]:
        return np.searchsorted(self.edge_array, np.asarray(values), side="right")

    @functools.cached_property
    def edge_array(self) -> npt.NDArray[np.float64]:
        """``edges`` as an array (converted once)."""
        return np.asarray(self.edges, dtype=np.float64)

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def probabilities(self) -> npt.NDArray[np.float64]:
        c = np.asarray(self.counts, dtype=np.float64)
        out: npt.NDArray[np.float64] = c / c.sum()
        return out

    def coarse_groups(self, n_groups: int = 10) -> npt.NDArray[np.intp]:
        """Group index of each fine bin for PSI/JSD: about ``n_groups`` groups of equal
        reference mass (deciles by default), every group non-empty (computed once per
        ``n_groups``; read-only)."""
        cache = self._groups
        if n_groups not in cache:
            groups = self._coarse_groups(n_groups)
            groups.flags.writeable = False
            cache[n_groups] = groups
        return cache[n_groups]

    @functools.cached_property
    def _groups(self) -> dict[int, npt.NDArray[np.intp]]:
        return {}

    def _coarse_groups(self, n_groups: int) -> npt.NDArray[np.intp]:
        cum_before = np.concatenate([[0.0], np.cumsum(self.probabilities)[:-1]])
        raw = np.minimum(np.floor(cum_before * n_groups + 1e-9), n_groups - 1).astype(np.intp)
        _, dense = np.unique(raw, return_inverse=True)
        out: npt.NDArray[np.intp] = np.asarray(dense, dtype=np.intp)
        return out

    def normal_scores(self) -> npt.NDArray[np.float64]:
        """Per bin, the probit of the reference CDF at the bin's middle, standardised
        under the reference bin probabilities: ~N(0, 1) scores for any distribution."""
        p = self.probabilities
        mid = np.cumsum(p) - p / 2
        z = ndtri(np.clip(mid, 1e-12, 1 - 1e-12))
        mu = float(np.sum(p * z))
        sd = math.sqrt(max(float(np.sum(p * (z - mu) ** 2)), 1e-12))
        return np.asarray((z - mu) / sd, dtype=np.float64)


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts per category; ``counts[-1]`` is the "other" bucket (reference values
    beyond the ``max_categories`` most frequent). With an empty "other" bucket every
    reference category is known, so a value outside ``categories`` is unseen."""

    categories: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    missing: int
    kind: Literal["categorical"] = "categorical"

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories)}

    @property
    def has_other(self) -> bool:
        return self.counts[-1] > 0


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Reference of one model (``version`` None: any version without its own)."""

    model: str
    version: str | None
    features: Mapping[str, ColumnProfile]
    outputs: Mapping[str, ColumnProfile] = field(default_factory=dict)
    n_rows: int = 0
    source: str = ""
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "version": self.version,
            "n_rows": self.n_rows,
            "source": self.source,
            "created_at": self.created_at,
            "features": {k: column_to_dict(v) for k, v in sorted(self.features.items())},
            "outputs": {k: column_to_dict(v) for k, v in sorted(self.outputs.items())},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @functools.cached_property
    def numeric_features(self) -> tuple[str, ...]:
        """The numeric features' names, in order."""
        return tuple(k for k, p in self.features.items() if isinstance(p, NumericProfile))

    @functools.cached_property
    def reference_id(self) -> str:
        """Content hash (16 hex digits) of the distributions; the same data gives the
        same id whatever the source label or creation time."""
        body = self.to_dict()
        for volatile in ("source", "created_at"):
            body.pop(volatile)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        try:
            if data.get("format") != FORMAT_VERSION:
                raise ReferenceDataError(f"unsupported reference format {data.get('format')!r}")
            return cls(
                model=str(data["model"]),
                version=None if data["version"] is None else str(data["version"]),
                n_rows=int(data["n_rows"]),
                source=str(data.get("source", "")),
                created_at=data.get("created_at"),
                features={k: column_from_dict(k, v) for k, v in data["features"].items()},
                outputs={k: column_from_dict(k, v) for k, v in data.get("outputs", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReferenceDataError):
                raise
            raise ReferenceDataError(f"malformed reference: {exc!r}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReferenceDataError(f"reference is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ReferenceDataError("reference JSON must be an object")
        return cls.from_dict(data)


def column_to_dict(c: ColumnProfile) -> dict[str, Any]:
    if isinstance(c, NumericProfile):
        return {
            "kind": "numeric",
            "edges": list(c.edges),
            "counts": list(c.counts),
            "bin_means": list(c.bin_means),
            "n": c.n,
            "missing": c.missing,
            "minimum": c.minimum,
            "maximum": c.maximum,
            "mean": c.mean,
            "std": c.std,
        }
    return {
        "kind": "categorical",
        "categories": list(c.categories),
        "counts": list(c.counts),
        "n": c.n,
        "missing": c.missing,
    }


def column_from_dict(name: str, d: Mapping[str, Any]) -> ColumnProfile:
    kind = d.get("kind")
    if kind == "numeric":
        edges = tuple(float(x) for x in d["edges"])
        counts = tuple(int(x) for x in d["counts"])
        if len(counts) != len(edges) + 1 or any(c <= 0 for c in counts):
            raise ReferenceDataError(f"feature {name!r}: counts must be positive, one per bin")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ReferenceDataError(f"feature {name!r}: edges must increase strictly")
        return NumericProfile(
            edges=edges,
            counts=counts,
            bin_means=tuple(float(x) for x in d["bin_means"]),
            n=int(d["n"]),
            missing=int(d["missing"]),
            minimum=float(d["minimum"]),
            maximum=float(d["maximum"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
        )
    if kind == "categorical":
        cats = tuple(str(x) for x in d["categories"])
        counts = tuple(int(x) for x in d["counts"])
        if len(counts) != len(cats) + 1:
            raise ReferenceDataError(f"feature {name!r}: one count per category plus 'other'")
        return CategoricalProfile(
            categories=cats, counts=counts, n=int(d["n"]), missing=int(d["missing"])
        )
    raise ReferenceDataError(f"feature {name!r}: unknown kind {kind!r}")


# ---------------------------------------------------------------- building


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def safe_float(v: object) -> float | None:
    """``v`` as a finite float, or None when it has none (an int beyond the float range,
    such as a 400-digit integer, or a non-finite float). Never raises on a number."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


#: ints longer than this many bits become a size label, not their (huge) decimal text
_MAX_CATEGORY_INT_BITS = 4_096


def is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def infer_kind(values: Iterable[object]) -> Literal["numeric", "categorical"] | None:
    """``numeric`` when every present value is a number, ``categorical`` when any is a
    string (or bool); None when every value is missing."""
    seen_number = False
    for v in values:
        if is_missing(v):
            continue
        if is_number(v):
            seen_number = True
        else:
            return "categorical"
    return "numeric" if seen_number else None


def category_of(v: object) -> str:
    """Canonical category label: strings as they are, ints/bools as their text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and v.bit_length() > _MAX_CATEGORY_INT_BITS:
        # str() of a huge int raises (Python's digit limit) and would make a huge label
        return f"<int of {v.bit_length()} bits>"
    return v if isinstance(v, str) else str(v)


def numeric_profile(values: Sequence[object], n_bins: int = 100) -> NumericProfile:
    converted = (safe_float(v) for v in values if is_number(v))
    present = [f for f in converted if f is not None]
    missing = len(values) - len(present)
    if not present:
        raise ReferenceDataError("no numeric values")
    x = np.sort(np.asarray(present, dtype=np.float64))
    # moments and bin means on a scaled copy: values near the float limit (1e200 squared,
    # or sums of 1e307) must not overflow to inf (a reference must be finite JSON)
    scale = max(float(np.max(np.abs(x))), 1e-300)
    xs = x / scale
    q = np.quantile(x, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    edges = np.unique(q)
    edges = edges[edges > x[0]]
    bins = np.searchsorted(edges, x, side="right")
    counts = np.bincount(bins, minlength=edges.size + 1)
    sums = np.bincount(bins, weights=xs, minlength=edges.size + 1)
    return NumericProfile(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        bin_means=tuple(
            float(np.clip(s / c * scale, x[0], x[-1])) for s, c in zip(sums, counts, strict=True)
        ),
        n=int(x.size),
        missing=missing,
        minimum=float(x[0]),
        maximum=float(x[-1]),
        mean=float(np.clip(xs.mean() * scale, x[0], x[-1])),
        std=float(min(xs.std() * scale, np.finfo(np.float64).max)),
    )


def categorical_profile(values: Sequence[object], max_categories: int = 200) -> CategoricalProfile:
    counter = Counter(category_of(v) for v in values if not is_missing(v))
    if not counter:
        raise ReferenceDataError("no values")
    top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
    other = sum(counter.values()) - sum(c for _, c in top)
    return CategoricalProfile(
        categories=tuple(k for k, _ in top),
        counts=(*(c for _, c in top), other),
        n=sum(counter.values()),
        missing=len(values) - sum(counter.values()),
    )


def column_profile(
    name: str,
    values: Sequence[object],
    *,
    categorical: bool = False,
    n_bins: int = 100,
    max_categories: int = 200,
) -> ColumnProfile | None:
    """Profile of one column, or None when it holds no value at all."""
    kind = "categorical" if categorical else infer_kind(values)
    if kind is None:
        return None
    try:
        if kind == "numeric":
            return numeric_profile(values, n_bins)
        return categorical_profile(values, max_categories)
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"feature {name!r}: {exc}") from None


def build_profile(
    columns: Mapping[str, Sequence[object]],
    *,
    model: str,
    version: str | None = None,
    outputs: Mapping[str, Sequence[object]] | None = None,
    categorical: Iterable[str] = (),
    n_bins: int = 100,
    max_categories: int = 200,
    source: str = "",
    created_at: str | None = None,
    classification: bool = True,
) -> ReferenceProfile:
    """Profile every column (all-missing columns are left out).

    ``outputs`` holds ``prediction`` (classes are categorical, a regression output is
    numeric) and ``confidence`` (top-class probability) columns when known;
    ``classification`` makes the ``prediction`` column categorical even when classes
    are integers.
    """
    forced = set(categorical)
    n_rows = max((len(v) for v in columns.values()), default=0)
    feats: dict[str, ColumnProfile] = {}
    for name, values in columns.items():
        prof = column_profile(
            name, values, categorical=name in forced, n_bins=n_bins, max_categories=max_categories
        )
        if prof is not None:
            feats[name] = prof
    outs: dict[str, ColumnProfile] = {}
    for name, values in (outputs or {}).items():
        if name not in OUTPUT_NAMES:
            raise ReferenceDataError(f"unknown output column {name!r} (known: {OUTPUT_NAMES})")
        as_classes = classification and name == "prediction"
        prof = column_profile(
            name, values, categorical=as_classes, n_bins=n_bins, max_categories=max_categories
        )
        if prof is not None:
            outs[name] = prof
        n_rows = max(n_rows, len(values))
    if not feats and not outs:
        raise ReferenceDataError("the reference has no usable column")
    return ReferenceProfile(  # sorted, as from_dict gives them: one order everywhere
        model=model,
        version=version,
        features=dict(sorted(feats.items())),
        outputs=dict(sorted(outs.items())),
        n_rows=n_rows,
        source=source,
        created_at=created_at,
    )


def numeric_from_dict(d: Mapping[str, Any], name: str = "reference") -> NumericProfile:
    ref = column_from_dict(name, d)
    if not isinstance(ref, NumericProfile):
        raise ReferenceDataError(f"{name!r}: a numeric profile is needed")
    return ref


def categorical_from_dict(d: Mapping[str, Any], name: str = "reference") -> CategoricalProfile:
    ref = column_from_dict(name, d)
    if not isinstance(ref, CategoricalProfile):
        raise ReferenceDataError(f"{name!r}: a categorical profile is needed")
    return ref
