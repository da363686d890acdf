"""Drift detection, pure: references, statistics, sequential detectors, window tests,
the processor and the report renderer (no I/O, no clock)."""

from modelguard.core.drift.processor import (
    DriftConfig,
    DriftProcessor,
    DriftState,
    Observation,
    ReferenceLearned,
    WarmupDropped,
    WindowReport,
    learn_reference,
)
from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceDataError,
    ReferenceProfile,
    build_profile,
)
from modelguard.core.drift.sequential import (
    LLRCusum,
    NumericDriftDetector,
    SlidingWindowChi2,
    SlidingWindowKS,
)
from modelguard.core.drift.window import (
    EvaluationConfig,
    TestResult,
    WindowVerdict,
    evaluate_window,
)

__all__ = [
    "CategoricalProfile",
    "DriftConfig",
    "DriftProcessor",
    "DriftState",
    "EvaluationConfig",
    "LLRCusum",
    "NumericDriftDetector",
    "NumericProfile",
    "Observation",
    "ReferenceDataError",
    "ReferenceLearned",
    "ReferenceProfile",
    "SlidingWindowChi2",
    "SlidingWindowKS",
    "TestResult",
    "WarmupDropped",
    "WindowReport",
    "WindowVerdict",
    "build_profile",
    "evaluate_window",
    "learn_reference",
]
