"""A private Redis started by the local launcher (ACL users and all) on a free port."""

from __future__ import annotations

from pathlib import Path

import redis

from modelguard.adapters.redis_client import RedisConnection, make_redis
from modelguard_devstack import StackConfig
from modelguard_devstack.config import find_repo_root
from modelguard_devstack.servers import RedisServer, redis_secret_path
from tests.support.ports import free_port


def launcher_redis(run_dir: Path) -> RedisServer:
    """A (not yet started) launcher Redis keeping its files and secrets in ``run_dir``."""
    cfg = StackConfig(root=find_repo_root(), redis_port=free_port(), run_dir_override=run_dir)
    return RedisServer(cfg)


def connection(server: RedisServer, role: str | None, timeout: float = 2.0) -> RedisConnection:
    """How ``role`` (None: anonymous) reaches ``server``."""
    if role is None:
        return RedisConnection(server.url)
    password = redis_secret_path(server.cfg, role).read_text().strip()
    return RedisConnection(server.url, role, password)


def client(server: RedisServer, role: str | None, timeout: float = 2.0) -> redis.Redis:
    return make_redis(connection(server, role), timeout=timeout)
