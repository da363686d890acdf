"""The leader's consumer: every partition of the input topics, assigned (no group).

Only the lease holder consumes, so there is nothing for a consumer group to balance; the
leader assigns every partition at the offsets saved in its snapshot (ADR 0005) and
reads its positions back after each batch. The shared adapters do not fit here:
``PartitionedRuntime`` is a group member that restores per assigned partition, and
``read_to_end`` stops at the high watermark, while the leader keeps consuming.

Offsets use the runtime's one key format, :func:`~modelguard.adapters.partitioned.offset_key`
(``topic:partition``); snapshots written before it used ``topic|partition`` and are read
through :func:`normalise_offsets`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from modelguard.adapters.partitioned import offset_key
from modelguard.errors import DependencyError

#: Seconds to wait for just-created topics to appear in the metadata.
TOPIC_WAIT_SECONDS = 15.0
_LEGACY_SEPARATOR = "|"


def normalise_offsets(offsets: Mapping[str, int]) -> dict[str, int]:
    """``offsets`` with legacy ``topic|partition`` keys rewritten as :func:`offset_key`
    (a key in the current format wins over its legacy twin).

    >>> normalise_offsets({"t|0": 5, "t:1": 7, "t|1": 3})
    {'t:0': 5, 't:1': 7}
    """
    out: dict[str, int] = {}
    for key, offset in offsets.items():
        if _LEGACY_SEPARATOR in key:
            topic, _, partition = key.rpartition(_LEGACY_SEPARATOR)
            out.setdefault(offset_key(topic, int(partition)), offset)
        else:
            out[key] = offset
    return out


class AssignedConsumer:
    """A consumer that, asked to subscribe, assigns every partition of the topics at
    ``offsets`` (:func:`offset_key` keys; a partition without one is read from its
    beginning). Everything else is the wrapped ``Consumer``'s."""

    def __init__(self, consumer: Consumer, offsets: Mapping[str, int]) -> None:
        self._c = consumer
        self._offsets = normalise_offsets(offsets)
        self.partitions: list[TopicPartition] = []

    def subscribe(self, topics: list[str]) -> None:
        deadline = time.monotonic() + TOPIC_WAIT_SECONDS
        meta = self._c.list_topics(timeout=10)
        while any(t not in meta.topics for t in topics) and time.monotonic() < deadline:
            time.sleep(0.2)  # just-created topics take a moment to appear in metadata
            meta = self._c.list_topics(timeout=10)
        parts: list[TopicPartition] = []
        for t in topics:
            if t not in meta.topics:
                raise DependencyError(f"topic {t!r} does not exist")
            for p in sorted(meta.topics[t].partitions):
                start = self._offsets.get(offset_key(t, p), OFFSET_BEGINNING)
                parts.append(TopicPartition(t, p, start))
        self.partitions = parts
        self._c.assign(parts)

    def positions(self) -> dict[str, int]:
        """The next offset to read per assigned partition (:func:`offset_key` keys)."""
        out = {}
        for tp in self._c.position(self.partitions):
            if tp.offset >= 0:
                out[offset_key(tp.topic, tp.partition)] = tp.offset
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)
