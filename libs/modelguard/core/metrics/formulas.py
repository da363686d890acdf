"""The one home of the formulas several modules compute (metrics processor, controller).

Each is pinned to its closed form by ``tests/unit/test_one_home_rules.py``.
"""

from __future__ import annotations


def error_rate(n_errors: int | float, n_predictions: int | float) -> float | None:
    """Share of failed predictions: ``n_errors / n_predictions`` (None when nothing was
    served).

    >>> error_rate(3, 200), error_rate(0, 0)
    (0.015, None)
    """
    if not n_predictions:
        return None
    return n_errors / n_predictions


def accuracy_drop_percent(baseline: float, accuracy: float) -> float:
    """Drop of ``accuracy`` below ``baseline`` in percent of the baseline:
    ``(baseline - accuracy) / baseline * 100`` (negative for a gain). The baseline must
    be positive (callers treat a baseline <= 0 as "no baseline").

    >>> round(accuracy_drop_percent(0.9, 0.81), 9), accuracy_drop_percent(0.5, 0.75)
    (10.0, -50.0)
    """
    if baseline <= 0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    return (baseline - accuracy) / baseline * 100.0
