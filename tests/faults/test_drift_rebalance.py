"""Two drift workers in one group, one killed (SIGKILL) mid-stream: the survivor takes
its partitions over from *their* checkpoints (ADR 0015, issue 11 item 7), so nothing is
replayed from offset 0 (the survivor handles exactly the events after the dead worker's
last checkpoint of them, plus its own), and every signal published by either worker
equals the per-partition offline recomputation (no id with two contents).

Before, the drift state was checkpointed per assignment (``l0,1,2|p0,1,2``): the
survivor's new assignment had no checkpoint, so it started from empty state at the
group's committed offsets (a window per version lost, the windows after it shifted).

The streams are those of ``test_drift_kill9`` (three partitions, labels interleaved
with predictions, a warm-up, data and concept drift).
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore
from modelguard.adapters.partitioned import offsets_of
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DriftSignal, Topics
from modelguard.contracts.codec import decode_event
from modelguard_services.drift.app import DriftService
from tests.faults.test_drift_kill9 import (
    CONFIG,
    PARTITIONS,
    SEED,
    _interleaved,
    _spawn,
    _stream,
    offline,
)
from tests.support.kafka import read_to_end
from tests.support.servers import Servers
from tests.support.services import kill_9, produce_slowly
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


def test_a_killed_workers_partitions_resume_from_their_checkpoints_on_the_survivor(
    servers: Servers, topics: Topics, settings: CommonSettings, redis_client: redis.Redis
) -> None:
    rng = np.random.default_rng(SEED + 1)
    preds, labels = _stream(rng)
    records = _interleaved(rng, preds, labels, topics)
    total, half = len(records), len(records) // 2
    group = f"drift-{uuid.uuid4().hex[:8]}"
    checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)

    def checkpointed(parts: list[int] | range = range(PARTITIONS)) -> int:
        return sum(checkpoints.offsets(group, list(parts)).values())

    survivor = DriftService(
        settings, CollectorRegistry(), config=CONFIG, group_id=group, checkpoint_interval=0.2
    )
    stop = threading.Event()
    thread = threading.Thread(target=survivor.run, args=(stop,), daemon=True)
    thread.start()
    victim = None
    try:
        runtime = survivor.runtime
        wait_for(lambda: runtime.partitions == [0, 1, 2], 60, "the survivor owns everything")
        victim = _spawn(settings, group)
        wait_for(
            lambda: bool(runtime.assigned) and len(runtime.partitions) < PARTITIONS,
            60,
            "the group rebalanced over two workers",
            victim,
        )
        mine = runtime.partitions
        theirs = [p for p in range(PARTITIONS) if p not in mine]
        produce_slowly(servers.kafka_bootstrap, records[:half], 0.0).join(60)
        wait_for(lambda: checkpointed() == half, 120, "the first half checkpointed", victim)
        producing = produce_slowly(servers.kafka_bootstrap, records[half:], 2.5)
        time.sleep(float(rng.uniform(0.3, 2.0)))  # a seeded random point mid-stream
        kill_9(victim)
        at_kill = checkpointed(theirs)  # what the dead worker's checkpoints hold
        producing.join(60)
        of_theirs = sum(1 for r in records if r[1] in theirs)
        assert 0 < at_kill < of_theirs, (at_kill, of_theirs)

        wait_for(lambda: runtime.partitions == [0, 1, 2], 60, "the survivor took them over")
        assert sorted(survivor.restored) == [0, 1, 2]  # each from its own checkpoint
        wait_for(lambda: checkpointed() == total, 120, "everything checkpointed")
        # no replay from 0: the survivor handled its own partitions' events once and
        # the dead worker's from the offsets of their checkpoints on
        assert runtime.processed == total - at_kill, (runtime.processed, total, at_kill)
        saved = checkpoints.offsets(group, theirs)
        assert all(offsets_of(saved, p) for p in theirs)
    finally:
        stop.set()
        thread.join(timeout=30)
        if victim is not None and victim.poll() is None:
            kill_9(victim)
    assert not thread.is_alive()

    msgs = read_to_end(servers.kafka_bootstrap, topics.drift_signals)
    got: dict[str, DriftSignal] = {}
    twice = []
    for m in msgs:
        s = decode_event(DriftSignal, m.value())
        if got.setdefault(s.event_id, s) != s:
            twice.append((s.kind, s.test, s.feature))
    assert not twice, twice
    store = ReferenceStore(redis_client, settings.redis_prefix)
    reference = store.load("fraud", "v1")
    assert reference is not None
    want = {s.event_id: s for s in offline(records, topics, {"v1": reference})}
    assert len(want) > 50 and any(s.kind == "concept" and s.drift_detected for s in want.values())
    assert set(got) == set(want)
    assert got == want
