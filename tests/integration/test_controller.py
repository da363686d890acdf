"""The controller on real Kafka and Redis: rollback, single decision with two replicas,
dry run, kill -9 at the worst moments followed by a restart, per-partition partial
windows merged before judgement, and the rollback alert firing in the live Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.kafka import client_config
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts import encode_event
from modelguard.contracts.codec import decode_event
from modelguard.contracts.common import Severity
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from modelguard.core.control import Policy, parse_policies
from modelguard.core.metrics import Aggregate, ClosedWindow, Pair, to_event
from modelguard.routing import RoutingTableStore
from modelguard_devstack.servers import RedisServer, redis_secret_path
from modelguard_services.controller.app import ControllerService
from tests.support.control import GUARDRAILS_YAML, metric_window
from tests.support.control import drift_signal as support_drift_signal
from tests.support.kafka import end_offsets, read_all, read_to_end
from tests.support.paths import ROOT
from tests.support.prom import PrometheusHelper
from tests.support.pubsub import subscribed
from tests.support.redis_acl import connection, launcher_redis
from tests.support.servers import Servers
from tests.support.threads import start_thread

pytestmark = pytest.mark.integration

POLICY_YAML = f"""
models:
  fraud:
    max_evidence_age_seconds: 3600
    cooldown_seconds: 600
    freeze_after_seconds: 4
{GUARDRAILS_YAML}\
    rollout: {{steps: [1, 5, 25, 50, 100], hold_seconds: 1, min_samples_per_step: 100}}
"""


def policies() -> dict[str, Policy]:
    return parse_policies(POLICY_YAML, "test-policy.yaml")


def window(
    i: int, version: str, *, bad: bool = False, t0: datetime, n: int = 100, tag: str = ""
) -> MetricWindowClosed:
    """One-second window ``i`` from ``t0``; ``bad``: 5% errors and accuracy 0.8."""
    metrics = {"accuracy": 0.8 if bad else 0.9}
    errors = 5 if bad else 0
    return metric_window(i, version, metrics=metrics, n=n, errors=errors, t0=t0, length=1, tag=tag)


def drift_signal(i: int, t0: datetime, version: str = "v1") -> DriftSignal:
    """A critical data-drift signal over one-second window ``i`` from ``t0``."""
    return support_drift_signal(
        i,
        Severity.CRITICAL,
        detected=True,
        statistic=0.6,
        n_current=500,
        version=version,
        t0=t0,
        length=1,
        event_id=f"d-{version}-{i}",
    )


def produce(bootstrap: str, topics: Topics, events: list[MetricWindowClosed | DriftSignal]) -> None:
    producer = Producer(client_config(bootstrap, **{"enable.idempotence": True}))
    for e in events:
        topic = topics.metric_windows if isinstance(e, MetricWindowClosed) else topics.drift_signals
        producer.produce(topic, key=e.model.encode(), value=encode_event(e))
    assert producer.flush(10) == 0


@pytest.fixture
def settings(settings: CommonSettings, servers: Servers) -> CommonSettings:
    """The controller runs as its own Redis user (ADR 0012); assertions use ``admin``."""
    return settings.model_copy(update=servers.redis_settings("controller"))


def store_for(servers: Servers, keys: RedisKeys) -> RoutingTableStore:
    return RoutingTableStore(servers.redis_client("controller"), keys)


@pytest.fixture
def store(servers: Servers, redis_keys: RedisKeys, redis_client: redis.Redis) -> RoutingTableStore:
    """``fraud`` at 95/5 (champion v1, challenger v2), revision 1, as the controller user."""
    store = store_for(servers, redis_keys)
    store.write("fraud", {"v1": 0.95, "v2": 0.05}, expected_revision=0, actor="test")
    return store


def decisions_on(
    bootstrap: str, topics: Topics, expected: int, timeout: float = 20.0
) -> list[RoutingDecision]:
    return [
        decode_event(RoutingDecision, m.value())
        for m in read_all(bootstrap, topics.routing_decisions, expected, timeout=timeout)
    ]


def decisions_published(bootstrap: str, topics: Topics) -> list[RoutingDecision]:
    """Every decision on the topic (read to its end: call it once the writers stopped)."""
    return [
        decode_event(RoutingDecision, m.value())
        for m in read_to_end(bootstrap, topics.routing_decisions)
    ]


def handled_everything(
    bootstrap: str, topics: Topics, state: redis.Redis, keys: RedisKeys
) -> Callable[[], bool]:
    """A condition: the leader's saved snapshot has read every input produced so far,
    so each decision those inputs call for (or wrongly call for twice) is out: the poll
    a negative check waits on, instead of a sleep that a loaded machine outlasts."""
    ends = end_offsets(bootstrap, [topics.metric_windows, topics.drift_signals])

    def check() -> bool:
        raw = state.get(f"{keys.prefix}:control:state")
        saved = {} if raw is None else json.loads(raw)["offsets"]
        return all(saved.get(k, 0) >= end for k, end in ends.items() if end > 0)

    return check


def wait_until(predicate: object, timeout: float = 60.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@contextmanager
def running(service: ControllerService) -> Iterator[threading.Event]:
    stop = threading.Event()
    worker = start_thread(service.run, stop, name=f"controller-{service.replica}")
    try:
        yield stop
    finally:
        stop.set()
        worker.join(timeout=60)  # raises what the service raised, or if it still runs


def bad_challenger(t0: datetime) -> list[MetricWindowClosed | DriftSignal]:
    events: list[MetricWindowClosed | DriftSignal] = []
    for i in range(6):
        events += [window(i, "v1", t0=t0), window(i, "v2", bad=i >= 1, t0=t0)]
    return events


def test_bad_challenger_rolled_back_once_with_audit_and_change_notice(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
) -> None:
    pubsub = subscribed(redis_client, redis_keys.routing_changes)
    store = store_for(servers, redis_keys)  # seeded after subscribing: its notice counts
    store.write("fraud", {"v1": 0.95, "v2": 0.05}, expected_revision=0, actor="test")
    registry = CollectorRegistry()
    service = ControllerService(settings, registry, policies(), store, replica="r1")
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    with running(service):
        produce(servers.kafka_bootstrap, topics, bad_challenger(t0))
        wait_until(lambda: store.revision("fraud") == 2)
        # replayed input (at-least-once upstream) must not produce a second decision
        produce(servers.kafka_bootstrap, topics, bad_challenger(t0))
        wait_until(handled_everything(servers.kafka_bootstrap, topics, redis_client, redis_keys))
    decisions = decisions_published(servers.kafka_bootstrap, topics)
    assert [d.action for d in decisions] == ["rollback"]
    (d,) = decisions
    table = store.read("fraud")
    assert table is not None
    assert table.weights == {"v1": 1.0, "v2": 0.0}
    assert table.decision_id == d.decision_id and table.revision == 2 == d.revision_after
    assert d.old_weights == {"v1": 0.95, "v2": 0.05} and d.revision_before == 1
    assert d.policy_hash and d.policy_hash.startswith("sha256:")
    assert any(e["status"] == "breach" for e in d.evidence)
    assert [t.revision for t in store.history("fraud")] == [1, 2]
    notices = []
    deadline = time.monotonic() + 30
    while len(notices) < 2 and time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg["type"] == "message":
            notices.append(msg["data"])
    assert len(notices) == 2  # the seed write and the rollback
    pubsub.close()
    value = registry.get_sample_value(
        "modelguard_controller_decisions_total",
        {"model_name": "fraud", "action": "rollback", "dry_run": "false"},
    )
    assert value == 1.0


def test_two_replicas_take_exactly_one_decision(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    store: RoutingTableStore,
) -> None:
    # A lease far longer than any stall of a loaded machine: the leader keeps it for the
    # whole test (a take-over is test_standby_takes_over_when_the_leader_stops's case).
    a = ControllerService(
        settings, CollectorRegistry(), policies(), store, replica="a", lease_ttl=60.0
    )
    b = ControllerService(
        settings, CollectorRegistry(), policies(), store, replica="b", lease_ttl=60.0
    )
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    with running(a), running(b):
        wait_until(lambda: a.is_leader or b.is_leader)
        produce(servers.kafka_bootstrap, topics, [*bad_challenger(t0), drift_signal(3, t0)])
        wait_until(lambda: len(a.decisions) + len(b.decisions) >= 3)
        wait_until(handled_everything(servers.kafka_bootstrap, topics, redis_client, redis_keys))
        assert a.is_leader != b.is_leader
    decisions = decisions_published(servers.kafka_bootstrap, topics)
    assert sorted(d.action for d in decisions) == ["alert", "retrain", "rollback"]
    assert len({d.decision_id for d in decisions}) == 3
    assert min(len(a.decisions), len(b.decisions)) == 0  # the standby did nothing
    table = store.read("fraud")
    assert table is not None and table.revision == 2


def test_standby_takes_over_when_the_leader_stops(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    store: RoutingTableStore,
) -> None:
    a = ControllerService(settings, CollectorRegistry(), policies(), store, replica="a")
    b = ControllerService(
        settings, CollectorRegistry(), policies(), store, replica="b", lease_ttl=1.0
    )
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    with running(a) as stop_a:
        wait_until(lambda: a.is_leader)
        with running(b):
            good = [window(i, v, t0=t0) for i in range(3) for v in ("v1", "v2")]
            produce(servers.kafka_bootstrap, topics, good)
            wait_until(lambda: redis_client.get(f"{redis_keys.prefix}:control:state") is not None)
            time.sleep(0.5)
            stop_a.set()
            wait_until(lambda: b.is_leader)
            bad = [window(i, v, t0=t0, bad=v == "v2") for i in range(3, 6) for v in ("v1", "v2")]
            produce(servers.kafka_bootstrap, topics, bad)
            wait_until(lambda: len(b.decisions) == 1)
    assert a.decisions == [] and [d.action for d in b.decisions] == ["rollback"]
    # b continued from a's saved offsets: it judged the windows a had already seen
    assert {e["event_id"] for e in b.decisions[0].evidence} <= {f"w-v2-{i}" for i in range(6)} | {
        None
    }


def test_dry_run_changes_nothing_in_redis(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    store: RoutingTableStore,
) -> None:
    before = redis_client.hgetall(redis_keys.routing("fraud"))
    audit_before = redis_client.xlen(redis_keys.routing_audit)
    service = ControllerService(settings, CollectorRegistry(), policies(), store, dry_run=True)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    with running(service):
        produce(servers.kafka_bootstrap, topics, bad_challenger(t0))
        wait_until(lambda: len(service.decisions) == 1)
    (d,) = decisions_published(servers.kafka_bootstrap, topics)
    assert d.action == "rollback" and d.dry_run
    assert d.new_weights == {"v1": 1.0, "v2": 0.0}  # what it would have done
    assert redis_client.hgetall(redis_keys.routing("fraud")) == before
    assert redis_client.xlen(redis_keys.routing_audit) == audit_before


def controller_process(
    settings: CommonSettings, policy_file: Path, crash_at: str | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MODELGUARD_REDIS_URL": settings.redis_url,
        "MODELGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "MODELGUARD_REDIS_PREFIX": settings.redis_prefix,
        "MODELGUARD_CONTROLLER_CRASH_AT": crash_at or "",
    }
    if settings.redis_username is not None:  # the controller's own Redis user
        env["MODELGUARD_REDIS_USERNAME"] = settings.redis_username
        env["MODELGUARD_REDIS_PASSWORD_FILE"] = str(settings.redis_password_file)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelguard_services.controller",
            "--policies",
            str(policy_file),
            "--lease-ttl",
            "1",
            "--replica",
            f"proc-{crash_at or 'clean'}",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("crash_at", ["after_outbox", "after_cas", "after_publish", "sigkill"])
def test_kill_9_mid_incident_then_restart_no_duplicate_no_loss(
    crash_at: str,
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    tmp_path: Path,
    store: RoutingTableStore,
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY_YAML)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    inject = None if crash_at == "sigkill" else crash_at
    first = controller_process(settings, policy_file, inject)
    try:
        # the leader is up once it holds the lease
        wait_until(lambda: redis_client.get(redis_keys.lease("controller")) is not None, 120)
        events = bad_challenger(t0)
        if crash_at == "sigkill":
            produce(servers.kafka_bootstrap, topics, events[:3])  # incident under way
            wait_until(lambda: redis_client.get(f"{redis_keys.prefix}:control:state") is not None)
            first.kill()
            produce(servers.kafka_bootstrap, topics, events[3:])
        else:
            produce(servers.kafka_bootstrap, topics, events)
        assert first.wait(timeout=30) == -9
    finally:
        if first.poll() is None:
            first.kill()
    second = controller_process(settings, policy_file)
    try:
        decisions = decisions_on(servers.kafka_bootstrap, topics, 1, timeout=120)
        assert decisions, "no decision after the restart"
        # would a duplicate follow? Not once the restarted leader has handled every input.
        handled = handled_everything(servers.kafka_bootstrap, topics, redis_client, redis_keys)
        wait_until(lambda: handled() or second.poll() is not None, 120)
    finally:
        second.terminate()
        _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()[-2000:]
    decisions = decisions_published(servers.kafka_bootstrap, topics)
    assert [d.action for d in decisions] == ["rollback"], err.decode()[-2000:]
    table = store.read("fraud")
    assert table is not None
    assert table.weights == {"v1": 1.0, "v2": 0.0}
    assert table.revision == 2  # applied exactly once
    assert table.decision_id == decisions[0].decision_id


# --- per-partition partial windows ----------------------------------------------------

PARTIALS_POLICY = """
models:
  fraud:
    window: tumbling:1
    max_evidence_age_seconds: 3600
    cooldown_seconds: 600
    partial_timeout_seconds: 600
    guardrails:
      - {name: accuracy, kind: accuracy_drop, max_drop_percent: 2, min_samples: 100,
         consecutive: 2}
    rollout: {steps: [5, 25, 50, 100], hold_seconds: 3600, min_samples_per_step: 100}
"""


def partial_window(
    i: int, version: str, partition: int, *, t0: datetime, n: int = 60, acc: float = 0.9
) -> MetricWindowClosed:
    """What the metrics processor publishes for one source partition of window ``i``:
    ``n`` labelled predictions, a real mergeable aggregate."""
    agg = Aggregate()
    right = round(n * acc)
    for k in range(n):
        agg.add_prediction("1", 20.0, None)
        agg.add_pair(Pair.classification("1" if k < right else "0", "1", None, 0.5))
    start = (t0 + timedelta(seconds=i)).timestamp()
    closed = ClosedWindow(
        "fraud", version, "tumbling", 1.0, None, start, start + 1.0, partition, agg, agg.metrics()
    )
    return to_event(closed, emitted_at=t0 + timedelta(seconds=i + 1))


def test_partials_of_each_partition_are_judged_as_one_window(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    redis_keys: RedisKeys,
    redis_client: redis.Redis,
    store: RoutingTableStore,
) -> None:
    """3 source partitions: one bad window's 3 partials are not 2 consecutive breaches,
    60 samples per partial meet ``min_samples: 100`` only merged, and a partition
    without v2 traffic in a window does not hold the window back forever."""
    registry = CollectorRegistry()
    policy = parse_policies(PARTIALS_POLICY, "partials.yaml")
    service = ControllerService(settings, registry, policy, store, replica="p1")
    t0 = datetime.now(UTC) - timedelta(seconds=60)

    def window_events(
        i: int, bad: bool, v2_partitions: tuple[int, ...] = (0, 1, 2)
    ) -> list[MetricWindowClosed | DriftSignal]:
        return [
            *(partial_window(i, "v1", p, t0=t0) for p in range(3)),
            *(partial_window(i, "v2", p, t0=t0, acc=0.7 if bad else 0.9) for p in v2_partitions),
        ]

    with running(service):
        # window 0 healthy; window 1 bad, but partition 2 saw no v2 traffic in it
        produce(servers.kafka_bootstrap, topics, window_events(0, False))
        produce(servers.kafka_bootstrap, topics, window_events(1, True, (0, 1)))
        wait_until(lambda: service.source_partitions == 3 and service.is_leader)
        # one bad window (even though 2 of its partials breach): no decision, once all
        # of them are handled (however long a loaded machine takes to get there)
        wait_until(handled_everything(servers.kafka_bootstrap, topics, redis_client, redis_keys))
        assert service.decisions == []
        state = service._snap.models["fraud"]
        assert len(state.windows["v2"]) == 1 and len(state.pending) == 1
        # window 2's partials move event time past window 1: merged from 2 partitions
        produce(servers.kafka_bootstrap, topics, window_events(2, True))
        wait_until(lambda: len(service.decisions) == 1)
        # a replay of everything (at-least-once upstream) changes nothing
        produce(
            servers.kafka_bootstrap,
            topics,
            [*window_events(1, True, (0, 1)), *window_events(2, True)],
        )
        wait_until(handled_everything(servers.kafka_bootstrap, topics, redis_client, redis_keys))
    (d,) = decisions_published(servers.kafka_bootstrap, topics)
    assert d.action == "rollback" and service.decisions == [d]
    assert "in 2 window(s) over 2s" in d.reason
    (ev,) = [e for e in d.evidence if e["guardrail"] == "accuracy"]
    assert ev["status"] == "breach" and ev["samples"] == 180  # window 2, all 3 partials
    windows = service._snap.models["fraud"].windows["v2"]
    assert [(w.n_labelled, w.complete) for w in windows] == [(180, True), (120, False), (180, True)]
    assert table_weights(store) == {"v1": 1.0, "v2": 0.0}
    late = registry.get_sample_value(
        "modelguard_controller_late_partials_total", {"model_name": "fraud"}
    )
    assert late == 0.0


def table_weights(store: RoutingTableStore) -> dict[str, float]:
    table = store.read("fraud")
    assert table is not None
    return dict(table.weights)


# --- alerts on the live Prometheus ------------------------------------------------------


def test_rollback_alert_fires_in_prometheus(
    servers: Servers,
    topics: Topics,
    settings: CommonSettings,
    prometheus: PrometheusHelper,
    store: RoutingTableStore,
) -> None:
    """The decision counter is scraped at 0 before the rollback, so increase() sees the
    step and ``ModelVersionRolledBack`` (deploy/prometheus/rules/controller.yml) fires."""
    registry = CollectorRegistry()
    service = ControllerService(settings, registry, policies(), store, replica="alerting")
    server = MetricsServer(registry)
    job = prometheus.register(server.target)
    sel = f'job_id="{job}",model_name="fraud"'
    try:
        with running(service):
            prometheus.wait_for(
                f'modelguard_controller_decisions_total{{{sel},action="rollback"}} == 0',
                lambda r: len(r) == 1,
            )
            produce(servers.kafka_bootstrap, topics, bad_challenger(datetime.now(UTC)))
            wait_until(lambda: len(service.decisions) == 1)
            firing = prometheus.wait_for(
                f'ALERTS{{alertname="ModelVersionRolledBack",alertstate="firing",{sel}}}',
                lambda r: len(r) == 1,
            )
    finally:
        server.close()
    labels = firing[0]["metric"]
    assert (labels["action"], labels["dry_run"], labels["severity"]) == (
        "rollback",
        "false",
        "warning",
    )
    # the same counter's other actions exist at 0 and raise nothing
    breach = prometheus.query(f'ALERTS{{alertname="ModelServingVersionBreach",{sel}}}')
    assert breach == []


# -- Redis outage (a private redis-server with an append-only file, so the shared one keeps
# running and the restarted server has the data it had) -----------------------------------


class PersistentRedis(RedisServer):
    """The launcher's Redis (ACL users included) with an fsync'ed append-only file."""

    def command(self) -> list[str]:
        return [*super().command(), "--appendonly", "yes", "--appendfsync", "always"]


def test_redis_outage_both_replicas_wait_and_resume_one_decision(
    servers: Servers, topics: Topics, settings: CommonSettings, tmp_path: Path
) -> None:
    private = PersistentRedis(launcher_redis(tmp_path).cfg)
    private.start(timeout=20)
    try:
        role = settings.model_copy(
            update={
                "redis_url": private.url,
                "redis_username": "controller",
                "redis_password_file": redis_secret_path(private.cfg, "controller"),
            }
        )
        keys = role.redis_keys
        store = RoutingTableStore(make_redis(role.redis_connection(), timeout=0.5), keys)
        store.write("fraud", {"v1": 0.95, "v2": 0.05}, expected_revision=0, actor="test")
        regs = {name: CollectorRegistry() for name in ("a", "b")}
        replicas = {
            name: ControllerService(role, reg, policies(), store, replica=name)
            for name, reg in regs.items()
        }

        def redis_up(name: str) -> float | None:
            return regs[name].get_sample_value("modelguard_dependency_up", {"dependency": "redis"})

        admin = make_redis(connection(private, "admin"), timeout=0.5)
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        events = bad_challenger(t0)
        with running(replicas["a"]), running(replicas["b"]):
            wait_until(lambda: replicas["a"].is_leader or replicas["b"].is_leader)
            wait_until(lambda: admin.get(keys.lease("controller")) is not None)

            # 1. The whole incident arrives while Redis is down: both replicas wait.
            private.stop()
            produce(servers.kafka_bootstrap, topics, events)
            wait_until(lambda: redis_up("a") == 0 and redis_up("b") == 0)
            wait_until(lambda: not replicas["a"].is_leader and not replicas["b"].is_leader)
            private.start(timeout=20)
            wait_until(lambda: redis_up("a") == 1 and redis_up("b") == 1)
            wait_until(lambda: store.revision("fraud") == 2)

            # 2. A second outage after the decision, then the same input replayed
            # (at-least-once upstream): no second decision.
            private.stop()
            wait_until(lambda: redis_up("a") == 0 and redis_up("b") == 0)
            produce(servers.kafka_bootstrap, topics, events)
            private.start(timeout=20)
            wait_until(lambda: replicas["a"].is_leader or replicas["b"].is_leader)
            # time for a (wrong) second decision to show: the leader handled the replay
            wait_until(handled_everything(servers.kafka_bootstrap, topics, admin, keys))
            # one leader: polled, as a replica learns that it lost the lease (3 s, renewed
            # every second; a stall of the loaded machine may move it) at its next renewal;
            # two leaders that stay fail here, and the one decision is asserted below
            wait_until(lambda: replicas["a"].is_leader != replicas["b"].is_leader)
        decisions = decisions_published(servers.kafka_bootstrap, topics)
        assert [d.action for d in decisions] == ["rollback"]
        table = store.read("fraud")
        assert table is not None and table.weights == {"v1": 1.0, "v2": 0.0}
        assert table.revision == 2 and table.decision_id == decisions[0].decision_id
    finally:
        private.stop()
