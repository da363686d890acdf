"""Model-server SDK: publish predictions, labels and exposures; time request stages.

>>> from modelguard.sdk import EventSDK, InvalidEventError, LatencyTimer

See :mod:`modelguard.sdk.emitter` for usage. Routing (which version serves a unit) is in
:mod:`modelguard.routing`.
"""

from modelguard.sdk.emitter import EventSDK
from modelguard.sdk.encode import InvalidEventError, PredictionEncoder
from modelguard.sdk.latency import DURATION_BUCKETS, STAGES, LatencyTimer

__all__ = [
    "DURATION_BUCKETS",
    "STAGES",
    "EventSDK",
    "InvalidEventError",
    "LatencyTimer",
    "PredictionEncoder",
]
