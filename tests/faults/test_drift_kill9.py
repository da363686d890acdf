"""kill -9 of the drift service at seeded random points, three times, with labels
produced interleaved with the predictions (issue 11 item 9): every signal published
equals the one an offline recomputation with the pure core's in-memory driver
(``DriftProcessor.run``) gives *per partition* for that partition's two streams, and no
signal id is published twice with different content.

The records spread over the three partitions of each topic (a prediction and its label
on the same partition number, chosen by a hash of the prediction id, ADR 0002). The
service keeps one drift state per partition (ADR 0015), so the order in which it reads
the partitions (which differs from run to run, and after each kill) does not matter;
within a partition the labels are produced interleaved with the predictions (a label up
to ~100 predictions before its own and up to ~400 after), an interleaving the concept
path's outputs must not depend on. Each partition warms up on its own first predictions
and adopts the reference published first (the offline recomputation adopts the one in
Redis). Two kills land in the first two thirds of the stream, one after.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
import zlib
from datetime import timedelta

import numpy as np
import pytest
import redis

from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore, partition_name
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DriftSignal, LabelObserved, PredictionLogged, Topics
from modelguard.contracts.codec import decode_event
from modelguard.core.drift.processor import DriftConfig, DriftProcessor, DriftState
from modelguard.core.drift.reference import ReferenceProfile
from tests.support.events import T0, prediction_at
from tests.support.kafka import read_to_end
from tests.support.servers import Servers
from tests.support.services import Record, kill_9, produce_slowly, service_env, spawn_service
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
SEED = 20261202
N = 12_000
CONFIG = DriftConfig(window_events=500, warmup_events=500)
PARTITIONS = 3


def _stream(rng: np.random.Generator) -> tuple[list[PredictionLogged], list[LabelObserved]]:
    """Predictions 1 s apart; ``amount`` shifts by 0.5 sigma after 40%, ``country``
    after 70%; the error rate rises from 10% to 30% after 60%. A label for 90% of
    them, dated 5 to 600 s after its prediction (plus 50 orphans at the end)."""
    preds, labels = [], []
    for i in range(N):
        y = int(rng.integers(0, 2))
        wrong = rng.random() < (0.1 if i < 0.6 * N else 0.3)
        country = rng.choice(
            ["DE", "FR", "US"], p=[0.5, 0.3, 0.2] if i < 0.7 * N else [0.3, 0.3, 0.4]
        )
        amount = float(rng.normal(0.5 if i >= 0.4 * N else 0.0, 1.0))
        features = {"amount": amount, "country": str(country)}
        prediction = 1 - y if wrong else y
        preds.append(
            prediction_at(i, "dk-", features=features, prediction=prediction, latency_ms=1.0)
        )
        if rng.random() < 0.9:
            labels.append(
                LabelObserved(
                    prediction_id=f"dk-{i}",
                    label=y,
                    event_time=T0 + timedelta(seconds=i + float(rng.uniform(5.0, 600.0))),
                )
            )
    labels += [
        LabelObserved(
            prediction_id=f"orphan-{j}", label=0, event_time=T0 + timedelta(seconds=2 * N)
        )
        for j in range(50)
    ]
    return preds, labels


def partition_of(prediction_id: str) -> int:
    """The partition of a prediction and of its label (both topics have three)."""
    return zlib.crc32(prediction_id.encode()) % PARTITIONS


def _interleaved(
    rng: np.random.Generator,
    preds: list[PredictionLogged],
    labels: list[LabelObserved],
    topics: Topics,
) -> list[Record]:
    """One produce order of both streams, each record on the partition of its
    prediction id: the label of prediction i goes out near prediction i + a seeded lag
    in [-100, 400) (so some labels are produced before their prediction); the 50
    orphans last."""
    at = {p.prediction_id: i for i, p in enumerate(preds)}
    keyed: list[tuple[float, int, Record]] = [
        (float(i), 0, (topics.predictions, partition_of(p.prediction_id), p.prediction_id, p))
        for i, p in enumerate(preds)
    ]
    for label in labels:
        i = at.get(label.prediction_id)
        key = float(len(preds) + 1) if i is None else i + float(rng.uniform(-100.0, 400.0))
        part = partition_of(label.prediction_id)
        keyed.append((key, 1, (topics.labels, part, label.prediction_id, label)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [r for _, _, r in keyed]


def offline(
    records: list[Record], topics: Topics, published: dict[str, ReferenceProfile]
) -> list[DriftSignal]:
    """Per partition, the pure core over that partition's two streams in produce order
    (its state named as the service names it; at the end of a warm-up it adopts the
    version's reference in ``published``)."""
    processor = DriftProcessor(
        CONFIG, worker="drift-0", adopt=lambda ref: published.get(ref.version or "", ref)
    )
    out: list[DriftSignal] = []
    for p in range(PARTITIONS):
        mine = [r[3] for r in records if r[1] == p]
        preds = [e for e in mine if isinstance(e, PredictionLogged)]
        labels = [e for e in mine if isinstance(e, LabelObserved)]
        state = DriftState(stream=partition_name(p))
        out += [
            s
            for s in processor.run([*preds, *labels], state, flush=False)
            if isinstance(s, DriftSignal)
        ]
    return out


def _spawn(settings: CommonSettings, group: str, *extra: str) -> subprocess.Popen[bytes]:
    env = service_env(settings, os.environ.get("FAULTS_LOG_LEVEL", "WARNING"))
    args = [
        *("--window-events", str(CONFIG.window_events)),
        *("--warmup-events", str(CONFIG.warmup_events)),
        *("--group-id", group, "--checkpoint-interval", "0.2"),
    ]
    return spawn_service("drift", env, *args, *extra)


def test_three_kill_9_at_random_points_equal_the_offline_recomputation(
    servers: Servers, topics: Topics, settings: CommonSettings, redis_client: redis.Redis
) -> None:
    rng = np.random.default_rng(SEED)
    preds, labels = _stream(rng)
    records = _interleaved(rng, preds, labels, topics)
    total = len(records)
    group = f"drift-{uuid.uuid4().hex[:8]}"
    checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)

    def checkpointed() -> int:
        """Events of both topics the service has checkpointed (every partition's)."""
        return sum(checkpoints.offsets(group, range(PARTITIONS)).values())

    def kill_mid_stream(chunk: list[Record], proc: subprocess.Popen[bytes]) -> int:
        """Produce the first 500 of ``chunk``; once ``proc`` checkpoints them, produce the
        rest over 2.5 s and SIGKILL ``proc`` at a seeded random moment meanwhile."""
        before = checkpointed()
        produce_slowly(servers.kafka_bootstrap, chunk[:500], 0.0).join(30)
        wait_for(lambda: checkpointed() > before, 120, "first events checkpointed", proc)
        producing = produce_slowly(servers.kafka_bootstrap, chunk[500:], 2.5)
        time.sleep(float(rng.uniform(0.2, 2.2)))  # the seeded random point
        kill_9(proc)
        producing.join(60)
        at = checkpointed()
        assert at < total, f"the kill must land mid-stream ({at} of {total})"
        return at

    third = total // 3
    kills = [
        kill_mid_stream(records[:third], _spawn(settings, group)),
        kill_mid_stream(records[third : 2 * third], _spawn(settings, group)),
    ]
    survivor = _spawn(settings, group)
    produce_slowly(servers.kafka_bootstrap, records[2 * third : 2 * third + 2000], 0.0).join(30)
    wait_for(
        lambda: checkpointed() == 2 * third + 2000, 120, "the events so far checkpointed", survivor
    )
    kills.append(kill_mid_stream(records[2 * third + 2000 :], survivor))
    final = _spawn(settings, group, "--idle-exit", "3")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]
    assert checkpointed() == total

    msgs = read_to_end(servers.kafka_bootstrap, topics.drift_signals)
    published: dict[str, DriftSignal] = {}
    twice = []
    for m in msgs:
        s = decode_event(DriftSignal, m.value())
        first = published.setdefault(s.event_id, s)
        if first != s:
            diff = {k: (v, getattr(s, k)) for k, v in first if v != getattr(s, k)}
            twice.append((first.kind, first.test, diff))
    store = ReferenceStore(redis_client, settings.redis_prefix)
    reference = store.load("fraud", "v1")
    assert reference is not None and store.is_learned("fraud", "v1")
    offline_signals = offline(records, topics, {"v1": reference})
    assert {s.kind for s in offline_signals} >= {"data", "concept", "dataset", "prediction"}
    assert any(s.drift_detected for s in offline_signals if s.kind == "concept")
    # Sequential alarms included: their content is a function of the stream, not of
    # how a run cut it into batches (before, a replay after a kill published the same
    # alarm id with another window_end / n_current / effect_size: n_current 200 vs 500)
    assert any(_sequential(s) for s in offline_signals)
    want = {s.event_id: s for s in offline_signals}
    got = dict(published)
    assert len(want) == len(offline_signals) > 50
    assert not twice, twice
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, (
        kills,
        sorted((want[i].kind, want[i].test, want[i].window_end.isoformat()) for i in missing),
        sorted((got[i].kind, got[i].test, got[i].window_end.isoformat()) for i in extra),
    )
    for event_id, s in want.items():
        assert got[event_id] == s, (kills, s, got[event_id])


def _sequential(s: DriftSignal) -> bool:
    return s.kind == "data" and s.test not in ("ks", "chi_square")
