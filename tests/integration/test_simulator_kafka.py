"""The simulator service on real Kafka and Redis: events reach their topics, routing
goes through the Redis table (a rollback written mid-run is followed), and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.codec import decode_event
from modelguard.contracts.experiments import ExposureLogged, OutcomeObserved
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.core.simulation import Scenario
from modelguard.routing import RoutingTableStore
from modelguard_services.simulator import SimulatorService
from tests.support.kafka import read_all
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration
START = datetime(2026, 2, 1, tzinfo=UTC)

SCENARIO = Scenario.model_validate(
    {
        "name": "itest",
        "seed": 11,
        "rate_per_second": 40,
        "units": 500,
        "models": [
            {
                "name": "fraud",
                "experiment_id": "exp-9",
                "features": {"amount": {"kind": "normal", "mean": 5, "std": 1}},
                "versions": {"v1": {"accuracy": 0.9}, "v2": {"accuracy": 0.9}},
                "weights": {"v1": 0.5, "v2": 0.5},
                "labels": {"fraction": 1.0, "delay_seconds": {"kind": "constant", "value": 0}},
            }
        ],
    }
)


def test_events_reach_kafka_and_routing_changes_are_followed(settings: CommonSettings) -> None:
    registry = CollectorRegistry()
    with SimulatorService(
        settings, SCENARIO, registry=registry, speed=None, start_time=START
    ) as sim:
        first = sim.run(seconds=5)
        assert first.stats.predictions == 200 and first.undelivered == 0
        store = RoutingTableStore(make_redis(settings.redis_connection()), settings.redis_keys)
        table = store.read("fraud")
        assert table is not None and table.weights == {"v1": 0.5, "v2": 0.5}
        assert table.experiment_id == "exp-9" and table.actor == "simulator"
        # the controller's rollback, mid-run: everything goes to v1 from now on
        rolled = store.write(
            "fraud", {"v1": 1.0, "v2": 0.0}, expected_revision=table.revision, actor="test"
        )
        assert sim.router is not None
        assert sim.router.wait_for_revision("fraud", rolled.revision, timeout=30)
        second = sim.run(seconds=5)
    assert second.stats.predictions == 400

    bootstrap = settings.kafka_bootstrap_servers
    topics = settings.topics
    predictions = [
        decode_event(PredictionLogged, m.value())
        for m in read_all(bootstrap, topics.predictions, 400)
    ]
    labels = read_all(bootstrap, topics.labels, 400)
    exposures = read_all(bootstrap, topics.exposures, second.stats.exposures)
    outcomes = read_all(bootstrap, topics.outcomes, second.stats.outcomes)
    assert len(predictions) == 400 and len(labels) == 400
    assert len(exposures) == second.stats.exposures and len(outcomes) == second.stats.outcomes
    early = [p for p in predictions if (p.event_time - START).total_seconds() < 5]
    late = [p for p in predictions if (p.event_time - START).total_seconds() >= 5]
    assert Counter(p.version for p in early).keys() == {"v1", "v2"}
    assert {p.version for p in late} == {"v1"}
    # units keep their version: a v1 unit of the first half is still on v1
    v1_units = {p.unit_id for p in early if p.version == "v1"}
    assert all(p.version == "v1" for p in late if p.unit_id in v1_units)
    assert {decode_event(LabelObserved, m.value()).prediction_id for m in labels} == {
        p.prediction_id for p in predictions
    }
    assert all(decode_event(ExposureLogged, m.value()).experiment_id == "exp-9" for m in exposures)
    decode_event(OutcomeObserved, outcomes[0].value())
    assert (
        registry.get_sample_value(
            "modelguard_simulator_events_total", {"event_type": "prediction_logged"}
        )
        == 400
    )


def test_cli_runs_a_scenario_file_and_rejects_a_bad_one(
    settings: CommonSettings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MODELGUARD_REDIS_URL": settings.redis_url,
        "MODELGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "MODELGUARD_REDIS_PREFIX": settings.redis_prefix,
    }
    cmd = [sys.executable, "-m", "modelguard_services.simulator"]
    example = ROOT / "deploy" / "scenarios" / "fraud-canary.yaml"
    done = subprocess.run(
        [*cmd, "--scenario", str(example), "--seconds", "3", "--speed", "0", "--rate", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["stats"]["predictions"] == 60 and summary["undelivered"] == 0
    assert len(read_all(settings.kafka_bootstrap_servers, settings.topics.predictions, 60)) == 60

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nmodels:\n  - name: m\n    versions: {v1: {}}\n    weights: {v1: 0.5}\n"
    )
    done = subprocess.run(
        [*cmd, "--scenario", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "bad.yaml: models.0: Value error, weights: sum to 0.5" in done.stderr
