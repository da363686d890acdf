"""Validation of routing weights: non-negative, finite, summing to 1, known versions.

>>> validate_weights({"v1": 0.75, "v2": 0.25})
{'v1': 0.75, 'v2': 0.25}
>>> validate_weights({"v1": 0.5, "v2": 0.2})
Traceback (most recent call last):
...
modelguard.core.routing.weights.WeightsError: weights: sum to 0.7, expected 1 (tolerance 1e-06)
>>> validate_weights({"v1": 1.0}, known_versions={"v2"})
Traceback (most recent call last):
...
modelguard.core.routing.weights.WeightsError: weights: unknown version 'v1' (known: v2)
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping

from modelguard.errors import InvalidInputError

#: Allowed distance of the weight sum from 1.
WEIGHT_TOLERANCE = 1e-6
#: Same rule as ``contracts.base.VersionName``.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class WeightsError(InvalidInputError):
    """Weights that cannot be written to a routing table; the message names the entry."""


def validate_weights(
    weights: Mapping[str, float],
    *,
    known_versions: Collection[str] | None = None,
    tolerance: float = WEIGHT_TOLERANCE,
    argument: str = "weights",
) -> dict[str, float]:
    """Return ``weights`` as a plain dict of floats, or raise :class:`WeightsError`.

    Rules: at least one version; names are valid version names (and in
    ``known_versions`` when given); every weight is a finite number >= 0; the sum is 1
    within ``tolerance``.
    """
    if not isinstance(weights, Mapping):
        raise WeightsError(f"{argument}: expected a mapping of version to weight")
    if not weights:
        raise WeightsError(f"{argument}: at least one version is required")
    out: dict[str, float] = {}
    for version, weight in weights.items():
        if not isinstance(version, str) or _VERSION.fullmatch(version) is None:
            raise WeightsError(f"{argument}: {version!r} is not a valid version name")
        if known_versions is not None and version not in known_versions:
            known = ", ".join(sorted(known_versions)) or "none"
            raise WeightsError(f"{argument}: unknown version {version!r} (known: {known})")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise WeightsError(f"{argument}[{version!r}]: expected a number, got {weight!r}")
        value = float(weight)
        if not math.isfinite(value):
            raise WeightsError(f"{argument}[{version!r}]: {value} is not a finite number")
        if value < 0.0:
            raise WeightsError(f"{argument}[{version!r}]: {value} is negative")
        out[version] = value
    total = math.fsum(out.values())
    if abs(total - 1.0) > tolerance:
        raise WeightsError(f"{argument}: sum to {total:.6g}, expected 1 (tolerance {tolerance:g})")
    return out


def normalize_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Scale non-negative finite weights to sum to 1 (e.g. bandit scores).

    >>> normalize_weights({"a": 3, "b": 1})
    {'a': 0.75, 'b': 0.25}
    """
    values = {}
    for version, weight in weights.items():
        value = float(weight)
        if not math.isfinite(value) or value < 0.0:
            raise WeightsError(f"weights[{version!r}]: {value} is not a finite number >= 0")
        values[version] = value
    total = math.fsum(values.values())
    if total <= 0.0:
        raise WeightsError("weights: sum to 0, cannot normalize")
    return {version: value / total for version, value in values.items()}
