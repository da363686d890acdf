"""kill -9 of the drift service at seeded random points, three times, with late labels
(issue 11 item 9): every signal published equals the one an offline recomputation with
the pure core's in-memory driver (``DriftProcessor.run``) gives for the same stream, and
no signal id is published twice with different content.

The stream is one partition of predictions (a drift window fills in arrival order, so
the order must be the same online and offline) and then, once every prediction is
checkpointed, the labels (long after their window closed: late for every window) on
the same partition, so the concept detector sees the same joins online and offline.
Two kills land while predictions are consumed, one while labels are.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import redis

from modelguard.adapters.drift_store import DriftCheckpoints
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import DriftSignal, LabelObserved, PredictionLogged, Topics
from modelguard.contracts.codec import decode_event
from modelguard.core.drift.processor import DriftConfig, DriftProcessor
from tests.support.events import T0, prediction_at
from tests.support.kafka import read_all
from tests.support.servers import Servers
from tests.support.services import Record, kill_9, produce_slowly, service_env, spawn_service
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
SEED = 20261202
N = 12_000
CONFIG = DriftConfig(window_events=500, warmup_events=500)
ASSIGNMENT = "l0,1,2|p0,1,2"


def _stream(rng: np.random.Generator) -> tuple[list[PredictionLogged], list[LabelObserved]]:
    """Predictions 1 s apart; ``amount`` shifts by 0.5 sigma after 40%, ``country``
    after 70%; the error rate rises from 10% to 30% after 60%. A label for 90% of
    them (plus 50 orphans), all after the last prediction."""
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
                    event_time=T0 + timedelta(seconds=N + i),
                )
            )
    labels += [
        LabelObserved(
            prediction_id=f"orphan-{j}", label=0, event_time=T0 + timedelta(seconds=2 * N)
        )
        for j in range(50)
    ]
    return preds, labels


def _records(topic: str, events: list[PredictionLogged] | list[LabelObserved]) -> list[Record]:
    """``events`` on partition 0 of ``topic``, keyed by prediction id."""
    return [(topic, 0, e.prediction_id, e) for e in events]


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
    group = f"drift-{uuid.uuid4().hex[:8]}"
    checkpoints = DriftCheckpoints(redis_client, settings.redis_prefix)

    def checkpointed(kind: str) -> int:
        saved = checkpoints.load(group, ASSIGNMENT) or {"offsets": {}}
        return sum(v for k, v in saved["offsets"].items() if kind in k)

    def kill_mid_stream(
        kind: str, topic: str, chunk: list[Any], total: int, proc: subprocess.Popen[bytes]
    ) -> int:
        """Produce the first 500 of ``chunk``; once ``proc`` checkpoints them, produce the
        rest over 2.5 s and SIGKILL ``proc`` at a seeded random moment meanwhile."""
        before = checkpointed(kind)
        produce_slowly(servers.kafka_bootstrap, _records(topic, chunk[:500]), 0.0).join(30)
        wait_for(lambda: checkpointed(kind) > before, 120, f"{kind} checkpointed", proc)
        producing = produce_slowly(servers.kafka_bootstrap, _records(topic, chunk[500:]), 2.5)
        time.sleep(float(rng.uniform(0.2, 2.2)))  # the seeded random point
        kill_9(proc)
        producing.join(60)
        at = checkpointed(kind)
        assert at < total, f"the kill must land mid-stream ({kind}: {at} of {total})"
        return at

    kills = [
        kill_mid_stream(
            "predictions", topics.predictions, preds[:5000], N, _spawn(settings, group)
        ),
        kill_mid_stream(
            "predictions", topics.predictions, preds[5000:10000], N, _spawn(settings, group)
        ),
    ]
    survivor = _spawn(settings, group)
    produce_slowly(servers.kafka_bootstrap, _records(topics.predictions, preds[10000:]), 0.0).join(
        30
    )
    wait_for(
        lambda: checkpointed("predictions") == N, 120, "every prediction checkpointed", survivor
    )
    kills.append(kill_mid_stream("labels", topics.labels, labels, len(labels), survivor))
    final = _spawn(settings, group, "--idle-exit", "3")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]
    assert checkpointed("labels") == len(labels)

    msgs = read_all(servers.kafka_bootstrap, topics.drift_signals, expected=10**6, timeout=6)
    published: dict[str, DriftSignal] = {}
    twice = []
    for m in msgs:
        s = decode_event(DriftSignal, m.value())
        first = published.setdefault(s.event_id, s)
        if first != s:
            diff = {k: (v, getattr(s, k)) for k, v in first if v != getattr(s, k)}
            twice.append((first.kind, first.test, diff))
    offline = [
        s
        for s in DriftProcessor(CONFIG, worker="drift-0").run([*preds, *labels], flush=False)
        if isinstance(s, DriftSignal)
    ]
    assert {s.kind for s in offline} >= {"data", "concept", "dataset", "prediction"}
    assert any(s.drift_detected for s in offline if s.kind == "concept")
    # Sequential alarms included: their content is a function of the stream, not of
    # how a run cut it into batches (before, a replay after a kill published the same
    # alarm id with another window_end / n_current / effect_size: n_current 200 vs 500)
    assert any(_sequential(s) for s in offline)
    want = {s.event_id: s for s in offline}
    got = dict(published)
    assert len(want) == len(offline) > 50
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
