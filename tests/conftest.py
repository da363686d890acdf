"""Shared fixtures: real servers for the session, unique topics and key prefixes per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from modelguard.adapters.kafka import delete_topics, ensure_topics
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from tests.support.kafka import wait_topics_ready
from tests.support.prom import PrometheusHelper
from tests.support.servers import Servers, resolve_servers

ADMIN_ENV = ("MODELGUARD_REDIS_USERNAME", "MODELGUARD_REDIS_PASSWORD_FILE")

# Hypothesis, for every test (a test's own @settings overrides a field): no per-example
# deadline and no too_slow health check, both wall-clock limits that a loaded CI machine
# breaks (DeadlineExceeded / "Unreliable test timings" on a correct test; performance is
# measured in benchmarks/). Under CI (``CI`` set, as .ci/run does) the examples are
# derandomized: the same examples on every run, so a CI verdict is reproducible.
hypothesis_settings.register_profile(
    "modelguard",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
hypothesis_settings.load_profile("modelguard")


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Real Kafka, Redis, Prometheus and Alertmanager (see tests/support/servers.py).

    With a Redis that has ACL users, the session's environment names the ``admin`` user
    (``MODELGUARD_REDIS_USERNAME`` / ``MODELGUARD_REDIS_PASSWORD_FILE``), so CLIs and
    service subprocesses started with this environment authenticate; a test that runs a
    service as its own role overrides both (``Servers.redis_env(role)``).
    """
    with ExitStack() as cleanup:
        found = resolve_servers(cleanup)
        saved = {k: os.environ.get(k) for k in ADMIN_ENV}
        os.environ.update({k: v for k, v in found.redis_env("admin").items() if k in ADMIN_ENV})
        try:
            yield found
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def topics(servers: Servers) -> Iterator[Topics]:
    """A fresh, provisioned topic set (3 partitions each) for one test, deleted after."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:12]}")
    ensure_topics(servers.kafka_bootstrap, t.all(), partitions=3)
    wait_topics_ready(servers.kafka_bootstrap, t.all(), partitions=3)  # as when provisioned
    yield t
    delete_topics(servers.kafka_bootstrap, t.all())


@pytest.fixture
def redis_keys() -> RedisKeys:
    return RedisKeys(prefix=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_client(servers: Servers, redis_keys: RedisKeys) -> Iterator[redis.Redis]:
    client = servers.redis_client("admin")
    yield client
    for key in client.scan_iter(f"{redis_keys.prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def settings(servers: Servers, topics: Topics, redis_keys: RedisKeys) -> CommonSettings:
    """Settings pointing at the test servers and this test's topics/keys, as the Redis
    ``admin`` user (fixtures and tests that play several roles); a service under test
    can run as its own role with ``role_settings``."""
    return CommonSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        topic_prefix=topics.prefix,
        redis_prefix=redis_keys.prefix,
        **servers.redis_settings("admin"),
    )


@pytest.fixture
def role_settings(servers: Servers, settings: CommonSettings) -> Callable[[str], CommonSettings]:
    """``role_settings("controller")``: ``settings`` as the Redis user of that role."""

    def make(role: str) -> CommonSettings:
        return settings.model_copy(update=servers.redis_settings(role))

    return make


@pytest.fixture
def prometheus(servers: Servers) -> Iterator[PrometheusHelper]:
    helper = PrometheusHelper(servers.prometheus_url, servers.prometheus_targets)
    yield helper
    helper.close()
