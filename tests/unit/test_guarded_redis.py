"""The guarded Redis client retries commands and whole pipelines through an outage."""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline

from modelguard.adapters.dependency import DependencyGuard
from modelguard.adapters.guarded_redis import GuardedPipeline, make_guarded_redis


def test_commands_and_pipelines_are_retried_with_their_queued_commands(
    monkeypatch: Any,
) -> None:
    guard = DependencyGuard("redis", sleep=lambda s: None)
    client = make_guarded_redis("redis://127.0.0.1:1/0", guard)
    fails = {"cmd": 2, "pipe": 2}
    executed: list[list[Any]] = []

    def fake_execute_command(self: redis.Redis, *args: Any, **options: Any) -> Any:
        if fails["cmd"]:
            fails["cmd"] -= 1
            raise redis.ConnectionError("refused")
        return args

    def fake_pipeline_execute(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        stack = [c[0] for c in self.command_stack]
        self.command_stack = []  # what a failed attempt's reset() does
        if fails["pipe"]:
            fails["pipe"] -= 1
            raise redis.ConnectionError("refused")
        executed.append(stack)
        return [True] * len(stack)

    monkeypatch.setattr(redis.Redis, "execute_command", fake_execute_command)
    monkeypatch.setattr(Pipeline, "execute", fake_pipeline_execute)
    assert client.execute_command("GET", "k") == ("GET", "k")
    pipe = client.pipeline()
    assert isinstance(pipe, GuardedPipeline)
    pipe.set("a", "1")
    pipe.set("b", "2")
    assert pipe.execute() == [True, True]
    assert executed == [[("SET", "a", "1"), ("SET", "b", "2")]]
    assert guard.outages == 2 and guard.up
