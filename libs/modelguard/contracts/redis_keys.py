"""Redis key layout for the routing table and its audit trail.

>>> keys = RedisKeys(prefix="mg")
>>> keys.routing("fraud")
'mg:routing:fraud'
>>> keys.routing_changes
'mg:routing:changes'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Keys used by the routing table writer and readers.

    ``routing(model)`` is a hash holding ``revision`` and the JSON weights; every change
    is published on ``routing_changes`` and appended to the ``routing_audit`` stream.
    """

    prefix: str = "modelguard"

    def routing(self, model: str) -> str:
        return f"{self.prefix}:routing:{model}"

    @property
    def routing_changes(self) -> str:
        return f"{self.prefix}:routing:changes"

    @property
    def routing_audit(self) -> str:
        return f"{self.prefix}:routing:audit"

    def lease(self, name: str) -> str:
        """Leader-lease key for a replicated service (e.g. the controller)."""
        return f"{self.prefix}:lease:{name}"
