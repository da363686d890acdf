"""Rollback control (pure): policies, ``assess(policy, evidence) -> Verdict`` and the
decision state machine (incidents, cooldown, hysteresis, progressive rollout)."""

from modelguard.contracts.ids import stable_id
from modelguard.core.control.assess import Evidence, GuardrailResult, Verdict, assess
from modelguard.core.control.machine import (
    ModelState,
    RoutingView,
    decide,
    observe,
    run,
)
from modelguard.core.control.policy import Policy, PolicyError, load_policies, parse_policies

__all__ = [
    "Evidence",
    "GuardrailResult",
    "ModelState",
    "Policy",
    "PolicyError",
    "RoutingView",
    "Verdict",
    "assess",
    "decide",
    "load_policies",
    "observe",
    "parse_policies",
    "policy_hash",
    "run",
    "stable_id",
]

from modelguard.core.control.policy import policy_hash
