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
from typing import overload


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Redis keys under a deployment prefix: every key is ``<prefix>:<part>:...``.

    Fixed keys are :class:`Key` attributes of a subclass; keys of a model, an
    experiment or a task are methods that call :meth:`key`.

    >>> KeySpace("mg").key("routing", "fraud")
    'mg:routing:fraud'
    """

    prefix: str = "modelguard"

    def key(self, *parts: str | int) -> str:
        """The key ``<prefix>:<parts joined by ':'>``."""
        return ":".join((self.prefix, *map(str, parts)))


class Key:
    """A fixed key of a :class:`KeySpace`, read as an attribute of an instance.

    >>> class Demo(KeySpace):
    ...     lease = Key("lease", "controller")
    >>> Demo("mg").lease
    'mg:lease:controller'
    """

    __slots__ = ("parts",)

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, space: None, owner: type[KeySpace]) -> Key: ...

    @overload
    def __get__(self, space: KeySpace, owner: type[KeySpace]) -> str: ...

    def __get__(self, space: KeySpace | None, owner: type[KeySpace]) -> Key | str:
        return self if space is None else space.key(*self.parts)


@dataclass(frozen=True, slots=True)
class RedisKeys(KeySpace):
    """Keys used by the routing table writer and readers.

    ``routing(model)`` is a hash holding ``revision`` and ``table`` (the
    ``RoutingTable`` JSON); every change is published on the ``routing_changes``
    channel, appended to the ``routing_audit`` stream, and the model is added to the
    ``routing_models`` set. The channel, stream and set live outside ``routing:`` so no
    model name can collide with them.
    """

    #: Pub/sub channel of change notices ``{"model": ..., "revision": ...}``.
    routing_changes = Key("routing-changes")
    #: Stream of every written table (fields ``model``, ``revision``, ``table``).
    routing_audit = Key("routing-audit")
    #: Set of the model names that have a routing table.
    routing_models = Key("routing-models")

    def routing(self, model: str) -> str:
        return self.key("routing", model)

    def routing_versions(self, model: str) -> str:
        """Set of the versions of ``model`` registered by routing table writers; routers
        refuse a table naming a version outside it (ADR 0012)."""
        return self.key("routing-versions", model)

    def lease(self, name: str) -> str:
        """Leader-lease key for a replicated service (e.g. the controller)."""
        return self.key("lease", name)
