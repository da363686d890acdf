"""Drift detection, pure: references, statistics, sequential detectors (one contract,
:class:`Detector`), window accumulators and tests, the processor and the report
renderer (no I/O, no clock)."""

from modelguard.core.drift.accumulators import WindowAccumulator
from modelguard.core.drift.checkpoint import CheckpointError, dump_state, load_state
from modelguard.core.drift.concept import ConceptAlarm, ConceptDetector
from modelguard.core.drift.config import DriftConfig
from modelguard.core.drift.detector import Alarm, Detector
from modelguard.core.drift.evaluation import (
    EvaluationConfig,
    TestResult,
    WindowVerdict,
    evaluate_window,
)
from modelguard.core.drift.events import (
    HEADLINE_TESTS,
    Observation,
    Output,
    ReferenceLearned,
    WarmupDropped,
    WindowReport,
)
from modelguard.core.drift.processor import DriftProcessor
from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceDataError,
    ReferenceProfile,
    build_profile,
)
from modelguard.core.drift.report import render_html, render_json, render_text, summary
from modelguard.core.drift.sequential import (
    LLRCusum,
    NumericDriftDetector,
    SlidingWindowChi2,
    SlidingWindowKS,
)
from modelguard.core.drift.state import DriftState
from modelguard.core.drift.warmup import learn_reference

__all__ = [
    "HEADLINE_TESTS",
    "Alarm",
    "CategoricalProfile",
    "CheckpointError",
    "ConceptAlarm",
    "ConceptDetector",
    "Detector",
    "DriftConfig",
    "DriftProcessor",
    "DriftState",
    "EvaluationConfig",
    "LLRCusum",
    "NumericDriftDetector",
    "NumericProfile",
    "Observation",
    "Output",
    "ReferenceDataError",
    "ReferenceLearned",
    "ReferenceProfile",
    "SlidingWindowChi2",
    "SlidingWindowKS",
    "TestResult",
    "WarmupDropped",
    "WindowAccumulator",
    "WindowReport",
    "WindowVerdict",
    "build_profile",
    "dump_state",
    "evaluate_window",
    "learn_reference",
    "load_state",
    "render_html",
    "render_json",
    "render_text",
    "summary",
]
