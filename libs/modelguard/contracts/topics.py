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


@dataclass(frozen=True, slots=True)
class Topics:
    """Names of every topic modelguard reads or writes."""

    prefix: str = "modelguard"

    def _name(self, stem: str, version: int = 1) -> str:
        return f"{self.prefix}.{stem}.v{version}"

    @property
    def predictions(self) -> str:
        return self._name("predictions")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @property
    def exposures(self) -> str:
        return self._name("exposures")

    @property
    def outcomes(self) -> str:
        return self._name("outcomes")

    @property
    def metric_windows(self) -> str:
        return self._name("metric-windows")

    @property
    def drift_signals(self) -> str:
        return self._name("drift-signals")

    @property
    def routing_decisions(self) -> str:
        return self._name("routing-decisions")

    @property
    def experiment_analyses(self) -> str:
        return self._name("experiment-analyses")

    @property
    def dead_letter(self) -> str:
        return self._name("dead-letter")

    def all(self) -> list[str]:
        """Every topic, for provisioning."""
        return [
            self.predictions,
            self.labels,
            self.exposures,
            self.outcomes,
            self.metric_windows,
            self.drift_signals,
            self.routing_decisions,
            self.experiment_analyses,
            self.dead_letter,
        ]
