"""Errors modelguard raises on purpose derive from ModelguardError and one kind, and
keep the built-in they refined (``except ValueError`` / ``except RuntimeError`` work)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from modelguard.adapters.dependency import DependencyUnavailableError
from modelguard.adapters.drift_files import DataFileError
from modelguard.adapters.settings import SecretFileError
from modelguard.adapters.topic_reader import TopicReadError
from modelguard.contracts.codec import DecodeError
from modelguard.contracts.routing import RoutingTable
from modelguard.core.control.policy import PolicyError
from modelguard.core.routing import WeightsError
from modelguard.core.simulation import ScenarioError
from modelguard.errors import (
    ConfigError,
    ConflictError,
    DependencyError,
    InvalidInputError,
    ModelguardError,
)
from modelguard.experiments.registry import ExperimentRegistry, RegistryError
from modelguard.routing import (
    NoRoutingTableError,
    RevisionConflictError,
    RoutingError,
    RoutingUnavailableError,
)
from modelguard.sdk import InvalidEventError
from modelguard_devstack.servers import StackError
from modelguard_services.controller.store import LostLeaseError

KINDS: list[tuple[type[BaseException], type[ModelguardError], type[BaseException]]] = [
    (DecodeError, InvalidInputError, ValueError),
    (WeightsError, InvalidInputError, ValueError),
    (InvalidEventError, InvalidInputError, ValueError),
    (DataFileError, InvalidInputError, ValueError),
    (RegistryError, InvalidInputError, ValueError),
    (PolicyError, ConfigError, ValueError),
    (ScenarioError, ConfigError, ValueError),
    (SecretFileError, ConfigError, ValueError),
    (DependencyUnavailableError, DependencyError, RuntimeError),
    (TopicReadError, DependencyError, RuntimeError),
    (RoutingUnavailableError, DependencyError, RuntimeError),
    (StackError, DependencyError, RuntimeError),
    (RevisionConflictError, ConflictError, RuntimeError),
    (LostLeaseError, ConflictError, RuntimeError),
    (RoutingError, ModelguardError, RuntimeError),
    (NoRoutingTableError, ModelguardError, RuntimeError),
]


@pytest.mark.parametrize(("error", "kind", "builtin"), KINDS, ids=lambda c: c.__name__)
def test_error_has_its_kind_and_keeps_its_builtin(
    error: type[BaseException], kind: type[ModelguardError], builtin: type[BaseException]
) -> None:
    assert issubclass(error, kind) and issubclass(error, ModelguardError)
    assert issubclass(error, builtin)
    # no error became a second built-in kind (an `except ValueError` catching more)
    other = RuntimeError if builtin is ValueError else ValueError
    assert not issubclass(error, other)


class _Conflicting:
    """A routing writer that loses the compare-and-set ``conflicts`` times."""

    def __init__(self, conflicts: int, error: type[Exception]) -> None:
        self.conflicts = conflicts
        self.error = error
        self.writes = 0

    def read(self, model: str) -> RoutingTable | None:
        return None

    def write(self, model: str, weights: Mapping[str, float], **kw: Any) -> RoutingTable:
        self.writes += 1
        if self.writes <= self.conflicts:
            raise self.error("another writer went first")
        return SimpleNamespace(model=model, weights=dict(weights))  # type: ignore[return-value]


class _OtherWriterConflictError(ConflictError):
    """Any writer's conflict (not only the Redis store's RevisionConflictError)."""


def _registry(writer: _Conflicting) -> ExperimentRegistry:
    registry = object.__new__(ExperimentRegistry)
    registry._routing = writer
    return registry


SPEC = SimpleNamespace(model="m", experiment_id="exp-1", salt="s")


def test_routing_conflicts_are_retried_by_type_not_by_class_name() -> None:
    writer = _Conflicting(2, _OtherWriterConflictError)
    _registry(writer)._route(SPEC, {"v1": 1.0}, "me", "why", keep=True)  # type: ignore[arg-type]
    assert writer.writes == 3


def test_other_errors_and_endless_conflicts_propagate() -> None:
    with pytest.raises(ValueError, match="another writer"):
        _registry(_Conflicting(1, ValueError))._route(SPEC, {}, "me", "why", keep=True)  # type: ignore[arg-type]
    writer = _Conflicting(99, _OtherWriterConflictError)
    with pytest.raises(_OtherWriterConflictError):
        _registry(writer)._route(SPEC, {}, "me", "why", keep=True)  # type: ignore[arg-type]
    assert writer.writes == 5
