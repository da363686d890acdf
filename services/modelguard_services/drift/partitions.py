"""The drift service's states, one per predictions partition (ADR 0015), without I/O.

Predictions partition ``n`` and labels partition ``n`` are co-partitioned by prediction
id (ADR 0002); their two streams go to one :class:`~modelguard.core.drift.DriftState`
and nothing else does. A batch of the consumer (several partitions, both topics, in read
order) is split by partition, keeping the order within each partition, and each part is
handed to the pure processor with its own state. So every output is a function of one
partition's two streams (the concept path does not depend on how the two interleave,
see ``core.drift.processor``): a replay after kill -9, another batching, another
interleaving of partitions or a move of the partition to another worker give the same
windows, alarms and ids as ``DriftProcessor.run`` over that partition's streams.

Each state is one ordered stream (``sources`` None): its warm-up learns from the
partition's first ``warmup_events`` predictions in partition order (within one
partition that is production order; the event-time warm-up across partitions is not
needed any more). Its ``stream`` is :func:`partition_name`, part of every signal id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelguard.adapters.drift_store import partition_name
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.drift import DriftProcessor, DriftState, Output, dump_state, load_state

Event = PredictionLogged | LabelObserved


class DriftPartitions:
    """The states of the partitions a worker reads, each fed only its own events."""

    def __init__(self, processor: DriftProcessor) -> None:
        self.processor = processor
        self.states: dict[int, DriftState] = {}

    def state(self, partition: int) -> DriftState:
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = DriftState(stream=partition_name(partition))
        return state

    def handle_batch(self, batch: Sequence[tuple[int, Event]]) -> list[Output]:
        """``batch``: (partition, event) in read order. Outputs partition by partition
        (in the order each first appears), each partition's in its stream's order."""
        parts: dict[int, list[Event]] = {}
        for p, e in batch:
            parts.setdefault(p, []).append(e)
        out: list[Output] = []
        for p, events in parts.items():
            out.extend(self.processor.handle_batch(events, self.state(p)))
        return out

    def dump(self, partition: int) -> dict[str, Any]:
        return dump_state(self.processor, self.state(partition))

    def load(self, partition: int, data: dict[str, Any]) -> None:
        """Replace the partition's state by a dump of it (``CheckpointError`` etc. if
        unusable: the state is then left out)."""
        self.states.pop(partition, None)
        state = load_state(self.processor, data)
        state.stream = partition_name(partition)
        state.sources = None
        self.states[partition] = state

    def drop(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.states.pop(p, None)
