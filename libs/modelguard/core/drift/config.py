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
    #: a label joins its prediction only if the prediction clock (see ``clock_step_s``)
    #: right after the prediction was at most this long after the label's event time; a
    #: label whose prediction has not arrived waits until the clock passes that point,
    #: then it is an orphan. What joins is then a function of the two streams, not of
    #: how they interleave (issue 11 #9)
    concept_label_grace_s: float = 3_600.0
    #: the prediction clock (running max of prediction event times) advances by at most
    #: this much per prediction, so one outlier dated far ahead cannot orphan labels
    clock_step_s: float = 60.0
    #: labels waiting for their prediction (in label order); beyond it the oldest is
    #: counted an orphan at once (``DriftState.label_overflow``)
    max_waiting_labels: int = 100_000
    #: joined errors kept per version until its monitor exists (warm-up); beyond it the
    #: oldest are dropped and counted (``DriftState.concept_backlog_dropped``)
    max_concept_backlog: int = 20_000

    @property
    def evaluation(self) -> EvaluationConfig:
        return EvaluationConfig(alpha=self.alpha, dataset_share=self.dataset_share)
