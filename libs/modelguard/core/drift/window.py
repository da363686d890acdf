"""Window accumulators and window tests (the old module path; the code lives in
:mod:`modelguard.core.drift.accumulators` and :mod:`modelguard.core.drift.evaluation`)."""

from modelguard.core.drift.accumulators import (
    Accumulator,
    CategoricalAccumulator,
    NumericAccumulator,
    WindowAccumulator,
    accumulator_from_dict,
    add_values,
    empty_accumulator,
)
from modelguard.core.drift.evaluation import (
    EvaluationConfig,
    TestResult,
    WindowVerdict,
    evaluate_window,
)

__all__ = [
    "Accumulator",
    "CategoricalAccumulator",
    "EvaluationConfig",
    "NumericAccumulator",
    "TestResult",
    "WindowAccumulator",
    "WindowVerdict",
    "accumulator_from_dict",
    "add_values",
    "empty_accumulator",
    "evaluate_window",
]
