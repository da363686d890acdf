"""kill -9 of the experiments service at seeded random points, three times (issue 11):
the final bookkeeping state of every task (unit records, per-experiment partials) equals
an offline recomputation with the experiments core (``bookkeeping.handle``) over the
same stream, so nothing is counted twice or lost; and the last published analysis counts
the same units and means as the core's ``analyze`` of the offline partials.

The stream has duplicate exposures, conflicting exposures (another arm), duplicate
outcome events and outcomes that arrive before their unit's exposure. Outcome values
are 0/1, so the sums are exact whatever the order; only the Welford mean / m2 of a
metric depend (in the last bits) on how the exposures and outcomes topics interleave,
which no consumer controls: those two are compared with a relative tolerance of 1e-9.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import Topics
from modelguard.contracts.codec import decode_event
from modelguard.contracts.experiments import (
    ExperimentAnalysis,
    ExperimentKeys,
    ExposureLogged,
    OutcomeObserved,
)
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.experiments import bookkeeping as bk
from modelguard.core.experiments.analysis import analyze
from modelguard.experiments.registry import ExperimentRegistry
from modelguard.routing.store import RoutingTableStore
from tests.support.kafka import read_to_end
from tests.support.servers import Servers
from tests.support.services import Record as Produced
from tests.support.services import kill_9, produce_slowly, service_env, spawn_service
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 20261203
UNITS = 6000
PARTITIONS = 3
ANALYSIS = ("--analysis-interval", "0.3")
Record = tuple[int, ExposureLogged | OutcomeObserved]


def _stream(rng: np.random.Generator) -> list[Record]:
    """(partition, event) in produce order: each unit's exposure, 3% again (duplicate),
    1% to the other arm (conflict); 0-3 conversion outcomes per unit, a fifth of them
    before the exposure, 5% sent twice."""
    out: list[Record] = []
    for i in range(UNITS):
        unit, part = f"u{i}", i % PARTITIONS
        arm = "v1" if rng.random() < 0.5 else "v2"
        t = T0 + timedelta(seconds=i)
        exposure = ExposureLogged(
            event_id=f"x{i}", experiment_id="e1", unit_id=unit, arm=arm, model="m1", event_time=t
        )
        outcomes = []
        for k in range(int(rng.integers(0, 4))):
            rate = 0.3 if arm == "v1" else 0.36
            outcomes.append(
                OutcomeObserved(
                    event_id=f"o{i}-{k}",
                    experiment_id="e1",
                    unit_id=unit,
                    metric="conversion",
                    value=float(rng.random() < rate),
                    pre_period_value=float(i % 7),
                    event_time=t + timedelta(seconds=k + 1),
                    model="m1",
                )
            )
        early = [o for o in outcomes if rng.random() < 0.2]
        out += [(part, o) for o in early]
        out.append((part, exposure))
        out += [(part, o) for o in outcomes if o not in early]
        out += [(part, o) for o in outcomes if rng.random() < 0.05]
        if rng.random() < 0.03:
            out.append((part, exposure.model_copy(update={"event_id": f"x{i}-again"})))
        if rng.random() < 0.01:
            other = "v2" if arm == "v1" else "v1"
            out.append((part, exposure.model_copy(update={"event_id": f"x{i}-c", "arm": other})))
    return out


def _records(topics: Topics, records: list[Record]) -> list[Produced]:
    """Exposures and outcomes on their topics and partitions, keyed by unit id."""
    return [
        (topics.exposures if isinstance(e, ExposureLogged) else topics.outcomes, p, e.unit_id, e)
        for p, e in records
    ]


def _spawn(settings: CommonSettings, *extra: str) -> subprocess.Popen[bytes]:
    return spawn_service("experiments", service_env(settings), *ANALYSIS, *extra)


def _offline(records: list[Record]) -> dict[int, bk.TaskState]:
    """Per task: the exposures topic's events in order, then the outcomes topic's."""
    tasks = {p: bk.TaskState() for p in range(PARTITIONS)}
    for p, state in tasks.items():
        mine = [e for part, e in records if part == p]
        for e in [x for x in mine if isinstance(x, ExposureLogged)]:
            bk.handle(e, state)
        for e in [x for x in mine if isinstance(x, OutcomeObserved)]:
            bk.handle(e, state)
    return tasks


def _same_partial(got: bk.ExperimentPartial, want: bk.ExperimentPartial) -> None:
    assert got.units == want.units and got.conflicts == want.conflicts
    assert got.buckets == want.buckets
    assert set(got.metrics) == set(want.metrics)
    for metric, arms in want.metrics.items():
        assert set(got.metrics[metric]) == set(arms)
        for arm, acc in arms.items():
            mine = got.metrics[metric][arm]
            exact = [i for i in range(bk.ACC_SIZE) if i not in (bk.MY, bk.M2Y)]
            assert [mine[i] for i in exact] == [acc[i] for i in exact], (metric, arm)
            for i in (bk.MY, bk.M2Y):
                assert math.isclose(mine[i], acc[i], rel_tol=1e-9), (metric, arm, i)


def test_three_kill_9_at_random_points_equal_the_offline_bookkeeping(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_client: redis.Redis,
    redis_keys: RedisKeys,
) -> None:
    rng = np.random.default_rng(SEED)
    records = _stream(rng)
    keys = ExperimentKeys(redis_keys.prefix)
    registry = ExperimentRegistry(redis_client, keys, RoutingTableStore(redis_client, redis_keys))
    registry.create(
        {
            "experiment_id": "e1",
            "model": "m1",
            "control": "v1",
            "treatments": ["v2"],
            "split": {"v1": 0.5, "v2": 0.5},
            "primary_metric": "conversion",
        },
        actor="test",
    )
    registry.start("e1", actor="test")
    group = settings.consumer_group("experiments")

    def checkpointed() -> int:
        total = 0
        for task in range(PARTITIONS):
            raw = redis_client.get(keys.checkpoint(group, task))
            if raw is not None:
                total += sum(json.loads(raw)["offsets"].values())
        return total

    chunks = [records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3]]
    chunks.append(records[2 * len(records) // 3 :])
    kills = []
    for chunk in chunks:
        proc = _spawn(settings)
        before = checkpointed()
        produce_slowly(servers.kafka_bootstrap, _records(topics, chunk[:500]), 0.0).join(30)
        wait_for(lambda: checkpointed() > before, 120, "checkpointing", proc)  # noqa: B023
        producing = produce_slowly(servers.kafka_bootstrap, _records(topics, chunk[500:]), 2.5)
        time.sleep(float(rng.uniform(0.2, 2.2)))  # the seeded random point
        kill_9(proc)
        producing.join(60)
        kills.append(checkpointed())
    assert kills[-1] < len(records), f"the last kill must land mid-stream: {kills}"

    final = _spawn(settings, "--idle-exit", "3")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]
    assert checkpointed() == len(records)

    want = _offline(records)
    merged = []
    for task, state in want.items():
        raw = redis_client.get(keys.checkpoint(group, task))
        assert raw is not None
        saved = json.loads(raw)["experiments"]
        assert set(saved) == set(state.experiments) == {"e1"}
        got = bk.ExperimentPartial.from_dict(saved["e1"])
        _same_partial(got, state.experiments["e1"])
        merged.append(got)
        units = {
            u.decode(): json.loads(r)
            for u, r in redis_client.hgetall(keys.units(group, task)).items()
        }
        assert units == {u: json.loads(json.dumps(r.to_json())) for u, r in state.units.items()}

    offline_partial = bk.merge_partials(s.experiments["e1"] for s in want.values())
    assert sum(offline_partial.units.values()) == UNITS  # duplicates and conflicts not counted
    (spec,) = registry.all("running")
    expected, _ = analyze(
        spec,
        offline_partial,
        history=registry.history("e1"),
        running_p={},
        analysis_id="offline",
        now=T0,
    )
    msgs = read_to_end(servers.kafka_bootstrap, topics.experiment_analyses)  # it exited
    last = decode_event(ExperimentAnalysis, msgs[-1].value())
    assert [(a.arm, a.units) for a in last.arms] == [(a.arm, a.units) for a in expected.arms]
    for a, b in zip(last.arms, expected.arms, strict=True):
        assert a.mean is not None and b.mean is not None
        assert math.isclose(a.mean, b.mean, rel_tol=1e-9), (a, b)
