"""Redis read/write through the real server."""

from __future__ import annotations

import json

import pytest
import redis

from modelguard.adapters.redis_client import make_redis
from modelguard.contracts.redis_keys import RedisKeys
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


def test_hash_and_stream_roundtrip(
    servers: Servers, redis_client: redis.Redis, redis_keys: RedisKeys
) -> None:
    client = servers.redis_client("admin")
    key = redis_keys.routing("fraud")
    client.hset(key, mapping={"revision": 1, "weights": json.dumps({"v1": 1.0})})
    assert client.hgetall(key) == {b"revision": b"1", b"weights": b'{"v1": 1.0}'}
    entry = client.xadd(redis_keys.routing_audit, {"model": "fraud", "revision": 1})
    assert client.xrange(redis_keys.routing_audit)[0][0] == entry
    assert redis_client.hget(key, "revision") == b"1"


def test_unreachable_redis_fails_fast() -> None:
    client = make_redis("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
