"""Redis connection helper (the routing table itself lives in the routing adapters).

Every modelguard Redis client is built by :func:`make_redis`, from a URL (anonymous) or
a :class:`RedisConnection` (URL plus ACL user and password), as returned by
``CommonSettings.redis_connection()``. Which user may touch which keys: ADR 0012.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis


@dataclass(frozen=True)
class RedisConnection:
    """A Redis URL and the ACL user to authenticate as (password never in ``repr``)."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def make_redis(connection: str | RedisConnection, *, timeout: float = 2.0) -> redis.Redis:
    """A client with bounded socket timeouts, so an unreachable Redis fails fast."""
    conn = RedisConnection(connection) if isinstance(connection, str) else connection
    extra: dict[str, str] = {}
    if conn.username is not None:
        extra["username"] = conn.username
    if conn.password is not None:
        extra["password"] = conn.password
    return redis.Redis.from_url(
        conn.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=False,
        **extra,
    )
