"""Redis side of the controller: leader lease, fenced state snapshot, operator freezes.

Keys (under the deployment's Redis prefix):
- ``<prefix>:lease:controller``: the leader lease (value: the holder's token, PX ttl);
- ``<prefix>:control:state``: the snapshot (JSON), written only by the lease holder;
- ``<prefix>:control:frozen``: hash model -> JSON {actor, reason, at} of operator freezes;
- ``<prefix>:control:audit``: stream of operator commands that do not change weights.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from modelguard.contracts.decisions import ControlKeys, RoutingDecision
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.core.control import ModelState
from modelguard.errors import ConflictError

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 2
end
return 0
"""

_FENCED_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LostLeaseError(ConflictError):
    """This replica no longer holds the leader lease: it must stop acting."""


class Snapshot(BaseModel):
    """Everything a successor needs: per-model states, input positions, outbox."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelState] = Field(default_factory=dict)
    #: "topic|partition" -> next offset to read.
    offsets: dict[str, int] = Field(default_factory=dict)
    #: Decisions decided but not yet fully applied and published.
    outbox: list[RoutingDecision] = Field(default_factory=list)


class ControllerStore:
    """Lease, snapshot and freeze flags of the controller on one Redis."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, token: str, ttl_ms: int) -> None:
        self._r = client
        self._keys = keys
        self.token = token
        self.ttl_ms = ttl_ms
        self._renew = client.register_script(_RENEW)
        self._fenced_set = client.register_script(_FENCED_SET)
        self._release = client.register_script(_RELEASE)
        ck = ControlKeys(keys.prefix)
        self.lease_key = ck.lease
        self.state_key = ck.state
        self.frozen_key = ck.frozen

    def hold_lease(self) -> bool:
        """Renew the lease if ours, take it if free; True when we hold it now."""
        return int(self._renew(keys=[self.lease_key], args=[self.token, self.ttl_ms])) > 0

    def release_lease(self) -> None:
        self._release(keys=[self.lease_key], args=[self.token])

    def load(self) -> Snapshot:
        raw = self._r.get(self.state_key)
        return Snapshot() if raw is None else Snapshot.model_validate_json(raw)

    def save(self, snapshot: Snapshot) -> None:
        """Write the snapshot if we still hold the lease, else raise :class:`LostLeaseError`."""
        ok = self._fenced_set(
            keys=[self.lease_key, self.state_key],
            args=[self.token, snapshot.model_dump_json()],
        )
        if not int(ok):
            raise LostLeaseError("the controller lease is held by another replica")

    def frozen(self) -> dict[str, dict[str, Any]]:
        raw: dict[bytes, bytes] = self._r.hgetall(self.frozen_key)  # type: ignore[assignment]
        return {k.decode(): json.loads(v) for k, v in raw.items()}
