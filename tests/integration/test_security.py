"""Security by default (ADR 0012): Redis ACL users created by the launcher, routers
refuse unregistered versions, Kafka SASL/SCRAM through the settings.

The Redis tests run on a private launcher-started Redis, so they always see the ACL
whatever server the rest of the suite uses.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaError, Producer
from prometheus_client import CollectorRegistry

from modelguard.adapters.drift_store import DriftCheckpoints
from modelguard.adapters.kafka import client_config, ensure_topics, make_consumer, make_producer
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.routing import RoutingTable
from modelguard.routing import NoRoutingTableError, RoutingClient, RoutingTableStore
from modelguard_devstack.servers import RedisServer
from modelguard_services.controller.store import ControllerStore, Snapshot
from tests.support.redis_acl import client, connection, launcher_redis
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


def poll(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = launcher_redis(tmp_path_factory.mktemp("acl-redis"))
    server.start(timeout=20)
    yield server
    server.stop()


@pytest.fixture
def keys() -> RedisKeys:
    return RedisKeys(prefix=f"sec{uuid.uuid4().hex[:10]}")


def table_json(model: str, weights: dict[str, float]) -> str:
    return json.dumps(
        {
            "model": model,
            "revision": 99,
            "weights": weights,
            "slots": {v: i for i, v in enumerate(sorted(weights))},
            "updated_at": "2026-01-01T00:00:00Z",
            "actor": "intruder",
        }
    )


def test_anonymous_client_cannot_read_or_write(acl_redis: RedisServer, keys: RedisKeys) -> None:
    anon = client(acl_redis, None)
    for call in (
        lambda: anon.hset(keys.routing("fraud"), "table", table_json("fraud", {"v9": 1.0})),
        lambda: anon.publish(keys.routing_changes, "{}"),
        lambda: anon.hget(keys.routing("fraud"), "table"),
    ):
        with pytest.raises(redis.AuthenticationError):
            call()
    # Nor can it become the default user with any password.
    with pytest.raises(redis.AuthenticationError):
        anon.execute_command("AUTH", "default", "guess")


def test_router_user_reads_but_cannot_write(acl_redis: RedisServer, keys: RedisKeys) -> None:
    RoutingTableStore(client(acl_redis, "controller"), keys).write(
        "fraud", {"v1": 1.0, "v2": 0.0}, expected_revision=0, actor="t"
    )
    router = client(acl_redis, "router")
    assert router.hget(keys.routing("fraud"), "table") is not None
    for call in (
        lambda: router.hset(keys.routing("fraud"), "table", table_json("fraud", {"v9": 1.0})),
        lambda: router.publish(keys.routing_changes, json.dumps({"model": "fraud"})),
        lambda: router.sadd(keys.routing_versions("fraud"), "v9"),
        lambda: router.delete(keys.routing("fraud")),
        lambda: router.get(f"{keys.prefix}:control:state"),  # not a routing key
        lambda: router.flushall(),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
    with pytest.raises(redis.exceptions.NoPermissionError):
        RoutingTableStore(router, keys).write("fraud", {"v1": 1.0}, expected_revision=1, actor="x")
    # ...but the routing client works as router: loads and follows changes.
    rc = RoutingClient(router, keys, models=["fraud"]).start()
    try:
        assert poll(lambda: rc.connected and rc.revision("fraud") == 1)
        RoutingTableStore(client(acl_redis, "controller"), keys).write(
            "fraud", {"v1": 0.0, "v2": 1.0}, expected_revision=1, actor="t"
        )
        assert rc.wait_for_revision("fraud", 2, timeout=30)
        assert rc.version_for("fraud", "u1") == "v2"
    finally:
        rc.close()


def test_each_service_user_writes_only_its_keys(acl_redis: RedisServer, keys: RedisKeys) -> None:
    controller = client(acl_redis, "controller")
    cstore = ControllerStore(controller, keys, token="tok", ttl_ms=5000)
    assert cstore.hold_lease()
    cstore.save(Snapshot())
    RoutingTableStore(controller, keys).write("m", {"a": 1.0}, expected_revision=0, actor="c")
    with pytest.raises(redis.exceptions.NoPermissionError):
        DriftCheckpoints(controller, keys.prefix).save("g", "p0", {"x": 1})

    drift = client(acl_redis, "drift")
    assert DriftCheckpoints(drift, keys.prefix).save("g", "p0", {"x": 1}) > 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        RoutingTableStore(drift, keys).write("m", {"a": 1.0}, expected_revision=1, actor="d")
    with pytest.raises(redis.exceptions.NoPermissionError):
        drift.set(keys.lease("controller"), "stolen")

    experiments = client(acl_redis, "experiments")
    experiments.hset(f"{keys.prefix}:experiment:e1:partials", "g", "{}")
    experiments.set(f"{keys.prefix}:expstate:g:t:checkpoint", "{}")
    RoutingTableStore(experiments, keys).write("m", {"a": 1.0}, expected_revision=1, actor="e")
    with pytest.raises(redis.exceptions.NoPermissionError):
        experiments.set(f"{keys.prefix}:control:state", "{}")

    operator = client(acl_redis, "operator")
    operator.hset(f"{keys.prefix}:control:frozen", "m", "{}")
    RoutingTableStore(operator, keys).write("m", {"a": 1.0}, expected_revision=2, actor="cli")
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator.flushall()


def test_router_refuses_a_table_naming_an_unregistered_version(
    acl_redis: RedisServer, keys: RedisKeys
) -> None:
    store = RoutingTableStore(client(acl_redis, "controller"), keys)
    store.write("fraud", {"v1": 0.5, "v2": 0.5}, expected_revision=0, actor="t")
    assert store.registered_versions("fraud") == {"v1", "v2"}
    registry = CollectorRegistry()
    rc = RoutingClient(client(acl_redis, "router"), keys, models=["fraud"], registry=registry)
    rc.start()
    admin = client(acl_redis, "admin")
    try:
        assert poll(lambda: rc.connected and rc.revision("fraud") == 1)
        before = {u: rc.version_for("fraud", u) for u in (f"u{i}" for i in range(200))}
        # Someone with raw write access (admin here) bypasses the store: v9 is unknown.
        admin.hset(
            keys.routing("fraud"),
            mapping={"revision": 2, "table": table_json("fraud", {"v1": 0.0, "v9": 1.0})},
        )
        admin.publish(keys.routing_changes, json.dumps({"model": "fraud", "revision": 2}))
        refused = "modelguard_routing_tables_refused_total"
        assert poll(lambda: (registry.get_sample_value(refused, {"model_name": "fraud"}) or 0) >= 1)
        assert rc.revision("fraud") == 1
        assert {u: rc.version_for("fraud", u) for u in before} == before
        # A fresh client with no last known good has no usable table.
        fresh = RoutingClient(client(acl_redis, "router"), keys)
        with pytest.raises(NoRoutingTableError, match="refused"):
            fresh.version_for("fraud", "u1")
        # Registering the version (operator/controller) makes the same table acceptable.
        store.register_versions("fraud", ["v9"])
        admin.publish(keys.routing_changes, json.dumps({"model": "fraud", "revision": 2}))
        assert rc.wait_for_revision("fraud", 2, timeout=30)
        assert rc.version_for("fraud", "u1") == "v9"
    finally:
        rc.close()


def test_services_read_redis_credentials_from_files(
    acl_redis: RedisServer, keys: RedisKeys, tmp_path: Path
) -> None:
    conn = connection(acl_redis, "controller")
    secret = tmp_path / "redis-controller"
    secret.write_text(f"{conn.password}\n")
    settings = CommonSettings(
        redis_url=acl_redis.url,
        redis_username="controller",
        redis_password_file=secret,
        redis_prefix=keys.prefix,
    )
    from modelguard.adapters.redis_client import make_redis

    store = RoutingTableStore(make_redis(settings.redis_connection()), settings.redis_keys)
    assert store.write("m", {"a": 1.0}, expected_revision=0, actor="t").revision == 1
    secret.write_text("wrong\n")
    with pytest.raises(redis.AuthenticationError):
        make_redis(settings.redis_connection()).ping()


# -- Kafka SASL/SCRAM ----------------------------------------------------------------------


def sasl_settings(servers: Servers, password_file: Path, prefix: str) -> CommonSettings:
    assert servers.kafka_sasl_bootstrap and servers.kafka_sasl_password_file, (
        "no SCRAM listener: start the broker with the local launcher (modelguard-stack up), "
        "or set KAFKA_SASL_BOOTSTRAP_SERVERS and KAFKA_SASL_PASSWORD_FILE"
    )
    return CommonSettings(
        kafka_bootstrap_servers=servers.kafka_sasl_bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username=servers.kafka_sasl_username,
        kafka_sasl_password_file=password_file,
        topic_prefix=prefix,
    )


def test_kafka_scram_produce_and_consume_through_settings(servers: Servers) -> None:
    assert servers.kafka_sasl_password_file is not None
    settings = sasl_settings(servers, servers.kafka_sasl_password_file, f"s{uuid.uuid4().hex[:8]}")
    conn = settings.kafka_connection()
    assert conn["security.protocol"] == "sasl_plaintext"
    assert conn["sasl.mechanism"] == "SCRAM-SHA-256"
    topic = settings.topics.predictions
    ensure_topics(conn, [topic], partitions=1)
    producer = make_producer(conn)
    for i in range(10):
        producer.produce(topic, key=b"k", value=f"m{i}".encode())
    assert producer.flush(20) == 0
    consumer = make_consumer(conn, f"{settings.topic_prefix}-scram-test")
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < 10 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is None:
                    got.append(msg.value())
    finally:
        consumer.close()
    assert got == [f"m{i}".encode() for i in range(10)]


def _auth_errors(conf: dict[str, object]) -> list[KafkaError]:
    """Errors a producer with ``conf`` reports while trying to deliver one message."""
    errors: list[KafkaError] = []
    producer = Producer({**conf, "error_cb": errors.append, "log_level": 0})
    producer.produce("modelguard-scram-probe", b"x")

    def refused() -> bool:
        producer.poll(0.1)
        return any(e.code() == KafkaError._AUTHENTICATION for e in errors)

    poll(refused, timeout=60)
    assert producer.flush(0.5) == 1  # nothing was delivered
    producer.purge()
    return errors


def test_kafka_scram_wrong_password_is_refused(servers: Servers, tmp_path: Path) -> None:
    wrong = tmp_path / "kafka-password"
    wrong.write_text("not-the-password\n")
    settings = sasl_settings(servers, wrong, "unused")
    errors = _auth_errors(client_config(settings.kafka_connection()))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert "invalid credentials" in str(errors)


def test_kafka_scram_listener_refuses_clients_without_sasl(servers: Servers) -> None:
    assert servers.kafka_sasl_bootstrap
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": servers.kafka_sasl_bootstrap,
            "error_cb": errors.append,
            "log_level": 0,
            "message.timeout.ms": 3000,
        }
    )
    delivered: list[object] = []
    producer.produce("modelguard-scram-probe", b"x", on_delivery=lambda e, m: delivered.append(e))
    producer.flush(10)
    assert delivered and delivered[0] is not None  # not delivered: the listener wants SASL


def test_unregistered_table_json_is_well_formed() -> None:
    # The raw table used above is a valid RoutingTable: it is refused for its version only.
    RoutingTable.model_validate_json(table_json("fraud", {"v1": 0.0, "v9": 1.0}))


def test_launcher_names_an_old_redis_without_users(tmp_path: Path) -> None:
    """A Redis started by an older launcher (no ACL) on the port: a clear error."""
    import subprocess

    from modelguard_devstack import StackError

    server = launcher_redis(tmp_path)
    old = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(server.cfg.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert poll(server._answers_anonymously)
        with pytest.raises(StackError, match="without modelguard's ACL users"):
            server.start(timeout=10)
    finally:
        old.terminate()
        old.wait(10)
