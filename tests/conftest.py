"""Shared fixtures: real servers for the session, unique topics and key prefixes per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from modelguard.adapters.kafka import delete_topics, ensure_topics
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from tests.support.prom import PrometheusHelper
from tests.support.servers import Servers, resolve_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Real Kafka, Redis, Prometheus and Alertmanager (see tests/support/servers.py)."""
    with ExitStack() as cleanup:
        yield resolve_servers(cleanup)


@pytest.fixture
def topics(servers: Servers) -> Iterator[Topics]:
    """A fresh, provisioned topic set (3 partitions each) for one test, deleted after."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:12]}")
    ensure_topics(servers.kafka_bootstrap, t.all(), partitions=3)
    yield t
    delete_topics(servers.kafka_bootstrap, t.all())


@pytest.fixture
def redis_keys() -> RedisKeys:
    return RedisKeys(prefix=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_client(servers: Servers, redis_keys: RedisKeys) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    for key in client.scan_iter(f"{redis_keys.prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def settings(servers: Servers, topics: Topics, redis_keys: RedisKeys) -> CommonSettings:
    """Service settings pointing at the test servers and this test's topics/keys."""
    return CommonSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        redis_url=servers.redis_url,
        topic_prefix=topics.prefix,
        redis_prefix=redis_keys.prefix,
    )


@pytest.fixture
def prometheus(servers: Servers) -> Iterator[PrometheusHelper]:
    helper = PrometheusHelper(servers.prometheus_url, servers.prometheus_targets)
    yield helper
    helper.close()
