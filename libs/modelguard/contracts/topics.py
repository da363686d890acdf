"""Versioned Kafka topic names.

A :class:`Topics` value carries a prefix so tests (and tenants) get isolated topic sets;
the version suffix changes only on a breaking contract change.

>>> Topics().predictions
'modelguard.predictions.v1'
>>> Topics(prefix="t-42").dead_letter
't-42.dead-letter.v1'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload


class Topic:
    """One topic of :class:`Topics`, read as an attribute: ``<prefix>.<stem>.v<version>``."""

    __slots__ = ("stem", "version")

    def __init__(self, stem: str, version: int = 1) -> None:
        self.stem, self.version = stem, version

    @overload
    def __get__(self, topics: None, owner: type[Topics]) -> Topic: ...

    @overload
    def __get__(self, topics: Topics, owner: type[Topics]) -> str: ...

    def __get__(self, topics: Topics | None, owner: type[Topics]) -> Topic | str:
        return self if topics is None else f"{topics.prefix}.{self.stem}.v{self.version}"


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of every topic modelguard reads or writes."""

    prefix: str = "modelguard"

    predictions = Topic("predictions")
    labels = Topic("labels")
    exposures = Topic("exposures")
    outcomes = Topic("outcomes")
    metric_windows = Topic("metric-windows")
    drift_signals = Topic("drift-signals")
    routing_decisions = Topic("routing-decisions")
    experiment_analyses = Topic("experiment-analyses")
    dead_letter = Topic("dead-letter")

    def all(self) -> list[str]:
        """Every topic, for provisioning (in the order declared above)."""
        return [t.__get__(self, Topics) for t in vars(Topics).values() if isinstance(t, Topic)]
