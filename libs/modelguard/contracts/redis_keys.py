"""Redis key layout for the routing table and its audit trail.

>>> keys = RedisKeys(prefix="mg")
>>> keys.routing("fraud")
'mg:routing:fraud'
>>> keys.routing_changes
'mg:routing-changes'
>>> keys.routing_audit
'mg:routing-audit'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Keys used by the routing table writer and readers.

    ``routing(model)`` is a hash holding ``revision`` and ``table`` (the
    ``RoutingTable`` JSON); every change is published on the ``routing_changes``
    channel, appended to the ``routing_audit`` stream, and the model is added to the
    ``routing_models`` set. The channel, stream and set live outside ``routing:`` so no
    model name can collide with them.
    """

    prefix: str = "modelguard"

    def routing(self, model: str) -> str:
        return f"{self.prefix}:routing:{model}"

    @property
    def routing_changes(self) -> str:
        """Pub/sub channel of change notices ``{"model": ..., "revision": ...}``."""
        return f"{self.prefix}:routing-changes"

    @property
    def routing_audit(self) -> str:
        """Stream of every written table (fields ``model``, ``revision``, ``table``)."""
        return f"{self.prefix}:routing-audit"

    @property
    def routing_models(self) -> str:
        """Set of the model names that have a routing table."""
        return f"{self.prefix}:routing-models"

    def routing_versions(self, model: str) -> str:
        """Set of the versions of ``model`` registered by routing table writers; routers
        refuse a table naming a version outside it (ADR 0012)."""
        return f"{self.prefix}:routing-versions:{model}"

    def lease(self, name: str) -> str:
        """Leader-lease key for a replicated service (e.g. the controller)."""
        return f"{self.prefix}:lease:{name}"
