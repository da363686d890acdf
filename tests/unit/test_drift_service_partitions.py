"""The drift service keeps one state per partition (ADR 0015, issue 11 items 7 and 9):
whatever the interleaving of partitions and topics, the batch cuts, a kill -9 after a
checkpoint at a random point and a rebalance that spreads the partitions over two new
workers, each partition publishes exactly the signals ``DriftProcessor.run`` gives over
that partition's two streams alone, and no id is published with two contents.

Before, the service kept one state for its whole assignment: windows filled in the order
partitions were read, and after a restart the replay merged them differently (the same
window id with other content), and a new assignment started empty.

The service itself runs here (``restore`` / ``handle_batch`` / ``save``), with Redis
and Kafka replaced by in-memory fakes and the runtime's offset bookkeeping done by the
test. Streams: three partitions, two versions (``v1`` learns its reference from a
warm-up on each partition, the first published wins; ``v2`` has an operator's reference
in the store from the start), drift in ``amount`` on v1 and a rising error rate, labels
produced up to ~60 predictions before or after their own."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from modelguard.adapters.delivery import RetriedOutputs
from modelguard.adapters.drift_store import Published, partition_name
from modelguard.adapters.ingest import Received
from modelguard.adapters.partitioned import offset_key
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DriftSignal, LabelObserved, PredictionLogged
from modelguard.contracts.codec import decode_event
from modelguard.core.drift import DriftConfig, DriftProcessor, DriftState
from modelguard.core.drift.reference import ReferenceProfile, build_profile
from modelguard_services.drift.app import DriftService
from tests.support.events import prediction_at

PARTITIONS = 3
PER_PARTITION = 700
CONFIG = DriftConfig(window_events=100, warmup_events=100, concept_baseline_labels=100)
TOPICS = CommonSettings(topic_prefix="perpart").topics
PRED, LABEL = TOPICS.predictions, TOPICS.labels
Event = PredictionLogged | LabelObserved


def _operator_reference() -> ReferenceProfile:
    rng = np.random.default_rng(5)
    n = 2000
    return build_profile(
        {
            "amount": list(rng.normal(0.0, 1.0, n)),
            "country": list(rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])),
        },
        model="fraud",
        version="v2",
        outputs={"prediction": [int(x) for x in rng.integers(0, 2, n)]},
        source="operator",
        classification=True,
    )


@functools.cache
def _streams() -> dict[tuple[str, int], tuple[Event, ...]]:
    """Per (topic, partition) its records in partition order."""
    rng = np.random.default_rng(2026)
    out: dict[tuple[str, int], tuple[Event, ...]] = {}
    for p in range(PARTITIONS):
        preds: list[PredictionLogged] = []
        keyed: list[tuple[float, LabelObserved]] = []
        for i in range(PER_PARTITION):
            version = "v1" if rng.random() < 0.6 else "v2"
            late = i >= PER_PARTITION // 2
            amount = float(rng.normal(1.0 if late and version == "v1" else 0.0, 1.0))
            country = str(rng.choice(["DE", "FR", "US"], p=[0.5, 0.3, 0.2]))
            y = int(rng.integers(0, 2))
            wrong = rng.random() < (0.5 if late and version == "v1" else 0.05)
            preds.append(
                prediction_at(
                    i + 7 * p,  # the partitions' clocks overlap but differ
                    f"{partition_name(p)}-",
                    version=version,
                    features={"amount": amount, "country": country},
                    prediction=1 - y if wrong else y,
                    latency_ms=1.0,
                )
            )
            if rng.random() < 0.85:
                label = LabelObserved(
                    prediction_id=preds[-1].prediction_id,
                    label=y,
                    event_time=preds[-1].event_time + timedelta(seconds=float(rng.uniform(1, 90))),
                )
                keyed.append((i + float(rng.uniform(-60, 60)), label))
        keyed.sort(key=lambda k: k[0])
        out[(PRED, p)] = tuple(preds)
        out[(LABEL, p)] = tuple(label for _, label in keyed)
    return out


class FakeStore:
    """ReferenceStore in memory: first ``only_if_absent`` publish wins."""

    def __init__(self) -> None:
        self.refs: dict[tuple[str, str | None], tuple[ReferenceProfile, bool]] = {}
        self.blobs: dict[str, ReferenceProfile] = {}

    def publish(self, profile: ReferenceProfile, *, only_if_absent: bool = False) -> Published:
        key = (profile.model, profile.version)
        self.blobs[profile.reference_id] = profile
        if key in self.refs and (only_if_absent or self.refs[key][0] == profile):
            return Published(False, self.refs[key][0].reference_id, 1)
        self.refs[key] = (profile, only_if_absent)
        return Published(True, profile.reference_id, 1)

    def is_learned(self, model: str, version: str | None) -> bool:
        return self.refs.get((model, version), (None, False))[1]

    def current_id(self, model: str, version: str | None) -> str | None:
        found = self.refs.get((model, version))
        return None if found is None else found[0].reference_id

    def load_id(self, model: str, version: str | None, ref_id: str) -> ReferenceProfile:
        return self.blobs[ref_id]

    def resolve(self, model: str, version: str) -> ReferenceProfile | None:
        found = self.refs.get((model, version)) or self.refs.get((model, None))
        return None if found is None else found[0]


class FakeCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], str] = {}

    def save(self, group: str, name: str, data: Mapping[str, Any]) -> int:
        raw = json.dumps(data, allow_nan=False)
        self.saved[(group, name)] = raw
        return len(raw)

    def load(self, group: str, name: str) -> dict[str, Any] | None:
        raw = self.saved.get((group, name))
        return None if raw is None else dict(json.loads(raw))


class FakeProducer:
    """Delivers every message at once (its delivery report included). While ``down``,
    every message fails its delivery instead (as after an outage longer than
    ``message.timeout.ms``: flush() still returns 0, the report carries the error)."""

    def __init__(self, sink: list[bytes]) -> None:
        self.sink = sink
        self.down = False

    def produce(
        self,
        topic: str,
        key: bytes | None = None,
        value: bytes = b"",
        on_delivery: Any = None,
        headers: Any = None,
    ) -> None:
        if not self.down:
            self.sink.append(value)
        if on_delivery is not None:
            on_delivery("_MSG_TIMED_OUT" if self.down else None, None)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class Worker:
    """A DriftService on fakes, with the runtime's part (positions, offsets) done here."""

    def __init__(self, store: FakeStore, checkpoints: FakeCheckpoints, sink: list[bytes]) -> None:
        settings = CommonSettings(
            kafka_bootstrap_servers="127.0.0.1:9",
            redis_url="redis://127.0.0.1:9/0",
            topic_prefix="perpart",
        )
        self.registry = CollectorRegistry()
        self.service = DriftService(settings, self.registry, config=CONFIG, group_id="g")
        self.service.runtime.consumer.close()  # never used: the test reads for it
        self.service._store = store  # type: ignore[assignment]
        self.service._checkpoints = checkpoints  # type: ignore[assignment]
        self.service.outputs = RetriedOutputs(FakeProducer(sink))  # type: ignore[arg-type]
        self.offsets: dict[str, int] = {}

    def assign(self, partitions: list[int]) -> None:
        saved = self.service.restore(partitions)
        self.offsets = {
            offset_key(t, p): saved.get(offset_key(t, p), 0)  # committed: nothing yet
            for t in (PRED, LABEL)
            for p in partitions
        }

    def handle(self, batch: list[tuple[str, int]]) -> None:
        received = []
        for topic, p in batch:
            key = offset_key(topic, p)
            at = self.offsets[key]
            received.append(Received(_streams()[(topic, p)][at], topic, p, at, None))
            self.offsets[key] = at + 1
        self.service.handle_batch(received)

    def save(self) -> None:
        self.service.save(dict(self.offsets))

    def done(self) -> bool:
        return all(self.offsets[offset_key(t, p)] >= len(_streams()[(t, p)]) for t, p in _tps(self))


def _tps(worker: Worker) -> list[tuple[str, int]]:
    return [(t, int(k.rpartition(":")[2])) for k in worker.offsets for t in (k.rpartition(":")[0],)]


def _read(worker: Worker, rng: np.random.Generator, until: int | None = None) -> None:
    """Read the worker's partitions in fetch-like runs (a random topic-partition, a
    random number of its next records), cut into random batches; stop after ``until``
    records (None: all)."""
    order: list[tuple[str, int]] = []
    left = {
        (t, p): len(_streams()[(t, p)]) - worker.offsets[offset_key(t, p)] for t, p in _tps(worker)
    }
    while any(left.values()) and (until is None or len(order) < until):
        live = [tp for tp, n in left.items() if n]
        tp = live[int(rng.integers(len(live)))]
        run = min(left[tp], int(rng.integers(1, 80)))
        order += [tp] * run
        left[tp] -= run
    if until is not None:
        order = order[:until]
    i = 0
    while i < len(order):
        cut = int(rng.integers(1, 400))
        worker.handle(order[i : i + cut])
        i += cut


def _offline(store: FakeStore) -> dict[str, DriftSignal]:
    """Per partition, the processor over its own two streams (its state named as the
    service names it; at the end of its warm-up it adopts the reference published)."""
    published = {key: ref for key, (ref, _) in store.refs.items()}
    want: dict[str, DriftSignal] = {}
    for p in range(PARTITIONS):
        processor = DriftProcessor(CONFIG, adopt=lambda r: published[(r.model, r.version)])
        state = DriftState(stream=partition_name(p))
        processor.set_reference(state, _operator_reference())
        events = [*_streams()[(PRED, p)], *_streams()[(LABEL, p)]]
        for s in processor.run(events, state, flush=False):
            if isinstance(s, DriftSignal):
                want[s.event_id] = s
    return want


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is shown as found, not shrunk
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    at=st.floats(0.05, 0.9),
    moved=st.sampled_from([None, 0, 1, 2]),
)
def test_each_partition_publishes_its_own_offline_signals(
    seed: int, at: float, moved: int | None
) -> None:
    rng = np.random.default_rng(seed)
    store, checkpoints, sink = FakeStore(), FakeCheckpoints(), []
    store.publish(_operator_reference())  # v2: an operator's reference, there from the start
    total = sum(map(len, _streams().values()))

    first = Worker(store, checkpoints, sink)
    first.assign(list(range(PARTITIONS)))
    _read(first, rng, until=int(at * total))
    first.save()  # a checkpoint at a random point ...
    _read(first, rng, until=int(rng.integers(1, 2000)))  # ... more published, then kill -9

    # restarted: one worker gets every partition back (``moved`` None), or the group
    # rebalances over two new workers (partition ``moved`` to one, the rest to the
    # other); each restores its partitions' own checkpoints
    parts = list(range(PARTITIONS))
    workers = [Worker(store, checkpoints, sink)]
    if moved is None:
        workers[0].assign(parts)
    else:
        workers.append(Worker(store, checkpoints, sink))
        workers[0].assign([moved])
        workers[1].assign([p for p in parts if p != moved])
    assert sorted(p for w in workers for p in w.service.restored) == parts
    assert sum(sum(w.offsets.values()) for w in workers) == int(at * total)  # not from 0
    for w in workers:
        _read(w, rng)
        assert w.done()

    got: dict[str, DriftSignal] = {}
    twice = []
    for raw in sink:
        s = decode_event(DriftSignal, raw)
        if got.setdefault(s.event_id, s) != s:
            twice.append((s.kind, s.test, s.feature))
    assert not twice, twice
    want = _offline(store)
    assert len(want) > 40
    assert {s.kind for s in want.values()} >= {"data", "dataset", "prediction", "concept"}
    assert set(got) == set(want)
    assert got == want


def test_the_streams_learn_on_each_partition_and_adopt_the_first_published() -> None:
    """v1 warms up on every partition (its own first predictions); all three test
    against the one published first; v2 uses the operator's reference from the start."""
    store, checkpoints, sink = FakeStore(), FakeCheckpoints(), []
    store.publish(_operator_reference())
    worker = Worker(store, checkpoints, sink)
    worker.assign(list(range(PARTITIONS)))
    _read(worker, np.random.default_rng(1))
    winner = store.refs[("fraud", "v1")][0].reference_id
    assert store.is_learned("fraud", "v1") and not store.is_learned("fraud", "v2")
    states = worker.service.partitions.states
    assert sorted(states) == list(range(PARTITIONS))
    for p, state in states.items():
        assert state.stream == partition_name(p)
        v1, v2 = state.monitors[("fraud", "v1")], state.monitors[("fraud", "v2")]
        assert v1.reference.reference_id == winner and v1.origin.startswith(f"p{p}/")
        assert v2.reference == _operator_reference()
    signals = [decode_event(DriftSignal, raw) for raw in sink]
    assert {s.reference_version for s in signals if s.version == "v1"} == {winner}
    assert len({s.event_id for s in signals}) == len(signals)  # partitions never share one


@settings(max_examples=15, deadline=None, derandomize=True)
@given(cuts=st.lists(st.integers(1, 250), min_size=1, max_size=12))
def test_the_adopted_reference_is_used_from_the_learn_point_whatever_the_batch_cut(
    cuts: list[int],
) -> None:
    """The pure core: ``adopt`` replaces the learned reference before any event after
    the warm-up is tested, so the events of the batch that ends the warm-up meet the
    adopted one, wherever the batch is cut (before, the service switched references
    after the batch: the rest of that batch had been tested against the learned one)."""
    events = [e for e in _streams()[(PRED, 0)] if e.version == "v1"]
    adopted = dataclasses.replace(_operator_reference(), version="v1")

    def run(batches: list[int]) -> list[DriftSignal]:
        processor = DriftProcessor(CONFIG, adopt=lambda ref: adopted)
        state = DriftState(stream="p0")
        out: list[DriftSignal] = []
        i = 0
        for size in [*batches, len(events)]:
            out += [
                s
                for s in processor.handle_batch(events[i : i + size], state)
                if isinstance(s, DriftSignal)
            ]
            i += size
        return out

    whole = run([])
    assert whole and {s.reference_version for s in whole} == {adopted.reference_id}
    assert run(cuts) == whole


def test_labels_the_concept_path_could_not_use_are_exported_once() -> None:
    """Orphan labels are counted in ``model_drift_concept_unused_total`` by the process
    that resolved them; a restored state's counts are not exported again."""
    from modelguard.contracts.telemetry import MODEL_DRIFT_CONCEPT_UNUSED
    from tests.support.events import T0

    def unused(worker: Worker, reason: str) -> float:
        name = f"{MODEL_DRIFT_CONCEPT_UNUSED.name}_total"
        return worker.registry.get_sample_value(name, {"reason": reason}) or 0.0

    def orphan(j: int) -> Received[Event]:
        label = LabelObserved(prediction_id=f"never-{j}", label=0, event_time=T0)
        return Received(label, LABEL, 0, j, None)

    def later(i: int) -> Received[Event]:
        # a minute apart: the prediction clock passes the orphans' deadline (grace 1 h)
        pred = prediction_at(60 * i, "later-", features={"amount": 0.0, "country": "DE"})
        return Received(pred, PRED, 0, i, None)

    checkpoints, store = FakeCheckpoints(), FakeStore()
    first = Worker(store, checkpoints, [])
    first.assign([0])
    first.service.handle_batch([orphan(j) for j in range(3)])
    assert unused(first, "orphan") == 0  # still waiting: their predictions may come
    first.service.handle_batch([later(i) for i in range(100)])
    assert unused(first, "orphan") == 3
    first.service.save({offset_key(PRED, 0): 100, offset_key(LABEL, 0): 3})

    second = Worker(store, checkpoints, [])
    second.assign([0])
    assert second.service.partitions.state(0).orphan_labels == 3  # restored...
    second.service.handle_batch([orphan(3)])
    second.service.handle_batch([later(i) for i in range(100, 200)])
    assert unused(second, "orphan") == 1  # ...and only the new one exported here
    assert unused(second, "label_overflow") == 0


def test_a_signal_whose_delivery_failed_is_sent_again_before_the_checkpoint() -> None:
    """Offsets are never saved past a drift signal the broker did not take: the
    checkpoint waits, the signal is sent again, then the checkpoint moves on."""
    store, checkpoints, sink = FakeStore(), FakeCheckpoints(), []
    store.publish(_operator_reference())
    worker = Worker(store, checkpoints, sink)
    producer = FakeProducer(sink)
    worker.service.outputs = RetriedOutputs(producer)  # type: ignore[arg-type]
    worker.assign(list(range(PARTITIONS)))
    producer.down = True
    _read(worker, np.random.default_rng(7))
    assert worker.done() and sink == []  # every signal failed
    worker.save()
    assert checkpoints.saved == {}  # not past the failed signals
    producer.down = False
    worker.save()
    assert len(checkpoints.saved) == PARTITIONS
    got = [decode_event(DriftSignal, raw) for raw in sink]
    assert {s.event_id: s for s in got} == _offline(store)
    assert len(got) == len(_offline(store))  # each sent again once
