"""Event contracts: pydantic v2 models, topic names and Redis key layout.

Every event that crosses a process boundary is defined here; JSON Schema files under
``schemas/`` are generated from these models (``modelguard schemas write``).
"""

from modelguard.contracts.base import Event, ModelName, VersionName
from modelguard.contracts.codec import DecodeError, decode_event, encode_event
from modelguard.contracts.common import Severity, WindowSpec
from modelguard.contracts.dead_letter import DeadLetter
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved
from modelguard.contracts.limits import LIMITS, Limits
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.topics import Topics

__all__ = [
    "LIMITS",
    "DeadLetter",
    "DecodeError",
    "DriftSignal",
    "Event",
    "ExposureLogged",
    "LabelObserved",
    "Limits",
    "MetricWindowClosed",
    "ModelName",
    "OutcomeObserved",
    "PredictionLogged",
    "RoutingDecision",
    "Severity",
    "Topics",
    "VersionName",
    "WindowSpec",
    "decode_event",
    "encode_event",
]
