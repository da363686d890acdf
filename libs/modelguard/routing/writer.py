"""The one ``RoutingWriter`` protocol: what the controller, the experiment registry and
the bandit need of the routing table writer (:class:`~modelguard.routing.RoutingTableStore`
implements it; tests pass fakes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from modelguard.contracts.routing import RoutingTable


class RoutingWriter(Protocol):
    """Reads a model's routing table and replaces its weights by compare-and-set."""

    def read(self, model: str) -> RoutingTable | None:
        """The current table of ``model`` (None when it has none)."""
        ...

    def write(
        self,
        model: str,
        weights: Mapping[str, float],
        *,
        expected_revision: int,
        actor: str,
        reason: str = "",
        experiment_id: str | None = None,
        keep_experiment: bool = True,
        decision_id: str | None = None,
        base: RoutingTable | None = None,
        experiment_salt: str | None = None,
    ) -> RoutingTable:
        """Store ``weights`` if the revision is ``expected_revision`` (else raise a
        :class:`~modelguard.errors.ConflictError`); the stored table is returned."""
        ...
