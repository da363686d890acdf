"""The drift processor's settings (one home for the drift defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from modelguard.core.drift.evaluation import EvaluationConfig


@dataclass(frozen=True)
class DriftConfig:
    window_events: int = 5_000
    min_window_events: int = 100
    alpha: float = 0.05
    dataset_share: float = 0.2
    warmup_events: int = 2_000
    sequential: bool = True
    sequential_alpha: float = 0.05
    horizon: int = 10_000
    max_pending_predictions: int = 100_000
    adwin_delta: float = 0.002
    concept_baseline_labels: int = 500
    #: warm-up predictions buffered per version while partitions catch up, as a multiple
    #: of ``warmup_events``; beyond it the latest (by event time) are dropped from testing
    warmup_buffer_factor: int = 4
    #: recent error values kept to rebuild ADWIN after a restart (river's ADWIN has no
    #: serialisable state): the restored detector is fed the last min(width, this)
    adwin_replay: int = 5_000

    @property
    def evaluation(self) -> EvaluationConfig:
        return EvaluationConfig(alpha=self.alpha, dataset_share=self.dataset_share)
