"""The README's main job: start the local stack and show the modelguard loop working."""

from modelguard_services.demo.loop import ClosedLoop
from modelguard_services.demo.results import LoopConfig, LoopResult

__all__ = ["ClosedLoop", "LoopConfig", "LoopResult"]
