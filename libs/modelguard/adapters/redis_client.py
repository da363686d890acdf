"""Redis connection helper (the routing table itself lives in the routing adapters)."""

from __future__ import annotations

import redis


def make_redis(url: str, *, timeout: float = 2.0) -> redis.Redis:
    """A client with bounded socket timeouts, so an unreachable Redis fails fast."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
    )
