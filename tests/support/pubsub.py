"""Redis pub/sub in tests: a subscription that is in place before the test writes."""

from __future__ import annotations

import time

import redis
from redis.client import PubSub


def subscribed(client: redis.Redis, channel: str, timeout: float = 30.0) -> PubSub:
    """A pub/sub of ``client`` on ``channel`` once Redis confirmed the subscription.

    ``subscribe`` only sends the command: a notice published (from another connection)
    before Redis processed it is lost, so a test that counts notices waits for the
    confirmation first."""
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    deadline = time.monotonic() + timeout
    while True:
        msg = pubsub.get_message(timeout=0.5)
        if msg is not None and msg["type"] == "subscribe":
            return pubsub
        if time.monotonic() >= deadline:
            pubsub.close()
            raise AssertionError(f"Redis did not confirm the subscription to {channel}")
