"""A Redis client whose every command waits out an outage (see ``adapters.dependency``).

Services that must survive a Redis outage build their client with
:func:`make_guarded_redis`: each command (and each pipeline's ``execute``) goes through
one :class:`~modelguard.adapters.dependency.DependencyGuard`, so call sites stay as
they are, the ``modelguard_dependency_up{dependency="redis"}`` gauge reports the outage,
and the service resumes by itself when Redis answers again.

A command whose reply was lost with the connection is sent again: the commands
modelguard's services use are idempotent (SET, HSET, GET, EVALSHA of compare-and-set
scripts, MULTI/EXEC transactions) or harmless to repeat (a revision counter bumped
twice).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline

from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.redis_client import make_redis


class GuardedPipeline(Pipeline):
    """A pipeline whose ``execute`` is retried whole (the queued commands are kept)."""

    guard: DependencyGuard

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)

        def attempt() -> list[Any]:
            if not self.command_stack:  # a failed attempt resets the pipeline
                self.command_stack = list(stack)
            return Pipeline.execute(self, raise_on_error)

        return self.guard.call(attempt)


class GuardedRedis(redis.Redis):
    """``redis.Redis`` with commands retried through ``guard`` (build it with
    :func:`make_guarded_redis`)."""

    guard: DependencyGuard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.guard.call(super().execute_command, *args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> GuardedPipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


def make_guarded_redis(url: str, guard: DependencyGuard, *, timeout: float = 2.0) -> GuardedRedis:
    """A client for ``url`` (same settings as ``make_redis``) guarded by ``guard``."""
    plain = make_redis(url, timeout=timeout)
    client = GuardedRedis(connection_pool=plain.connection_pool)
    client.guard = guard
    return client
