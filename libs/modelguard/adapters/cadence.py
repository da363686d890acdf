"""How often a stream processor checkpoints: a base interval, stretched by the
checkpoint's own CPU cost, and capped.

A snapshot's cost grows with the state, so the interval stretches to keep checkpoints
within ``max_share`` of the loop's time. Only the CPU time of the checkpoint counts
(``time.thread_time``): waiting for the broker to acknowledge a flush is not work, and
after a broker outage counting it stretched the interval past ten minutes. The interval
never exceeds ``max_factor`` times the base interval.

>>> c = CheckpointCadence(base=1.0, max_share=0.05, max_factor=10)
>>> c.record(cpu_seconds=0.1)  # 0.1 s of work at 5% -> every 2 s
2.0
>>> c.record(cpu_seconds=30.0)  # capped
10.0
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CheckpointCadence:
    base: float
    max_share: float = 0.05
    max_factor: float = 10.0
    interval: float = field(init=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or not 0 < self.max_share <= 1 or self.max_factor < 1:
            raise ValueError("base > 0, 0 < max_share <= 1 and max_factor >= 1 are required")
        self.interval = self.base

    @property
    def cap(self) -> float:
        return self.base * self.max_factor

    def record(self, cpu_seconds: float) -> float:
        """The next interval after a checkpoint that took ``cpu_seconds`` of CPU."""
        self.interval = min(self.cap, max(self.base, cpu_seconds / self.max_share))
        return self.interval

    def due(self, since_last: float) -> bool:
        return since_last >= self.interval
