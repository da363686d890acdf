"""Routing on Redis: the table writer (compare-and-set) and the cached routing client.

Writers (controller, bandit, CLI)::

    store = RoutingTableStore(make_redis(settings.redis_connection()), keys)
    table = store.write("fraud", {"v1": 0.9, "v2": 0.1}, expected_revision=0, actor="me")

Readers (model servers, simulator)::

    router = RoutingClient(make_redis(settings.redis_connection()), keys, models=["fraud"]).start()
    router.version_for("fraud", "user-42")

See :mod:`modelguard.routing.store` and :mod:`modelguard.routing.client`; the pure
assignment and weight rules are in :mod:`modelguard.core.routing`.
"""

from modelguard.core.routing import WeightsError
from modelguard.routing.client import (
    NoRoutingTableError,
    RoutingClient,
    RoutingError,
    RoutingUnavailableError,
)
from modelguard.routing.store import RevisionConflictError, RoutingTableStore
from modelguard.routing.writer import RoutingWriter

__all__ = [
    "NoRoutingTableError",
    "RevisionConflictError",
    "RoutingClient",
    "RoutingError",
    "RoutingTableStore",
    "RoutingUnavailableError",
    "RoutingWriter",
    "WeightsError",
]
