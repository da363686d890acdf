"""The shared shape of the metrics processor's parts: settings, window geometry and the
one step :mod:`.windowing` calls on the join (:mod:`.join`, which builds on the windowing,
implements it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from modelguard.core.metrics.config import MetricsConfig

if TYPE_CHECKING:
    from modelguard.core.metrics.aggregate import Aggregate
    from modelguard.core.metrics.state import PartitionState


class ProcessorBase(ABC):
    """Settings and window geometry (finest length first) of a metrics processor."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self._lengths = tuple(sorted(float(x) for x in self.config.window_lengths_s))
        if not self._lengths:
            raise ValueError("at least one window length is needed")
        self._base = self._lengths[0]
        self._coarse = self._lengths[1:]
        for length in self._coarse:
            if abs(length / self._base - round(length / self._base)) > 1e-9:
                raise ValueError(f"window {length:g}s is not a multiple of {self._base:g}s")
        self._forget_after = self.config.label_ttl_s + self.config.orphan_grace_s
        #: window aggregates holding deferred contributions (``Aggregate.settle``)
        self._unsettled: list[Aggregate] = []

    def settle(self) -> None:
        """Fold every deferred window contribution in (the end of a batch: the states
        then read as if each event had been added on its own)."""
        for agg in self._unsettled:
            agg.settle()
        self._unsettled.clear()

    # -- the join's step the windowing calls (expiry of what is due) -----------------
    @abstractmethod
    def _sweep(self, state: PartitionState, w: float) -> None: ...
