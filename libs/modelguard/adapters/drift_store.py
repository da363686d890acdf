"""Reference distributions in Redis, so every drift worker tests against the same one.

Layout (``prefix`` is the deployment's Redis prefix):

- ``{prefix}:drift:ref:{model}:{version}:{reference_id}`` — the profile JSON, immutable
  (``version`` is ``*`` for the model-wide reference);
- ``{prefix}:drift:ref:{model}:{version}`` — hash with ``current`` (reference id),
  ``revision`` (bumped on every change) and ``learned`` (``1`` when the current one was
  learned from a warm-up and published with ``only_if_absent``), written atomically by a
  Lua script;
- ``{prefix}:drift:ref:history:{model}:{version}`` — list of the ids installed, newest
  first (the version history).

``publish(..., only_if_absent=True)`` is how a learned warm-up reference is shared: the
first partition to learn wins and every partition learning later installs the winner at
the point where it learns (ADR 0015). A learned reference is therefore not installed
when a partition merely sees the version (:meth:`ReferenceStore.is_learned`): its own
warm-up decides where it starts, so a replay starts at the same point.

:class:`DriftCheckpoints` keeps the drift service's state and offsets (see its
docstring).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from modelguard.core.drift.reference import ReferenceDataError, ReferenceProfile

ANY_VERSION = "*"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


_PUBLISH = """
local cur = redis.call('HGET', KEYS[1], 'current')
if ARGV[3] == '1' and cur then
  return {0, cur, redis.call('HGET', KEYS[1], 'revision')}
end
redis.call('SET', KEYS[2], ARGV[2])
if cur ~= ARGV[1] then
  local rev = redis.call('HINCRBY', KEYS[1], 'revision', 1)
  redis.call('HSET', KEYS[1], 'current', ARGV[1], 'learned', ARGV[3])
  redis.call('LPUSH', KEYS[3], ARGV[1])
  redis.call('LTRIM', KEYS[3], 0, 99)
  return {1, ARGV[1], tostring(rev)}
end
return {0, cur, redis.call('HGET', KEYS[1], 'revision')}
"""


@dataclass(frozen=True)
class Published:
    """Outcome of a publish: ``installed`` False when another reference was kept."""

    installed: bool
    reference_id: str
    revision: int


class ReferenceStore:
    def __init__(self, client: redis.Redis, prefix: str = "modelguard") -> None:
        self._r = client
        self._prefix = prefix
        self._publish = client.register_script(_PUBLISH)

    def _pointer(self, model: str, version: str | None) -> str:
        return f"{self._prefix}:drift:ref:{model}:{version or ANY_VERSION}"

    def _blob(self, model: str, version: str | None, ref_id: str) -> str:
        return f"{self._pointer(model, version)}:{ref_id}"

    def _history(self, model: str, version: str | None) -> str:
        return f"{self._prefix}:drift:ref:history:{model}:{version or ANY_VERSION}"

    def publish(self, profile: ReferenceProfile, *, only_if_absent: bool = False) -> Published:
        ref_id = profile.reference_id
        keys = [
            self._pointer(profile.model, profile.version),
            self._blob(profile.model, profile.version, ref_id),
            self._history(profile.model, profile.version),
        ]
        installed, current, revision = self._publish(
            keys=keys, args=[ref_id, profile.to_json(), "1" if only_if_absent else "0"]
        )
        cur = current.decode() if isinstance(current, bytes) else str(current)
        return Published(bool(int(installed)), cur, int(revision or 0))

    def current_id(self, model: str, version: str | None) -> str | None:
        raw = self._r.hget(self._pointer(model, version), "current")
        return None if raw is None else _text(raw)

    def is_learned(self, model: str, version: str | None) -> bool:
        """Whether the current reference of ``model``/``version`` was learned from a
        warm-up (published with ``only_if_absent``); False for one set by an operator
        (or by a release before the flag existed)."""
        return _text(self._r.hget(self._pointer(model, version), "learned") or b"0") == "1"

    def load_id(self, model: str, version: str | None, ref_id: str) -> ReferenceProfile:
        raw = self._r.get(self._blob(model, version, ref_id))
        if raw is None:
            raise ReferenceDataError(f"reference {ref_id} of {model}/{version} is missing")
        return ReferenceProfile.from_json(_text(raw))

    def load(self, model: str, version: str | None) -> ReferenceProfile | None:
        """The current reference of ``model``/``version`` exactly (no fallback)."""
        ref_id = self.current_id(model, version)
        return None if ref_id is None else self.load_id(model, version, ref_id)

    def resolve(self, model: str, version: str) -> ReferenceProfile | None:
        """The version's reference, else the model-wide one, else None."""
        return self.load(model, version) or self.load(model, None)

    def history(self, model: str, version: str | None) -> list[str]:
        return [_text(x) for x in self._r.lrange(self._history(model, version), 0, -1)]


def partition_name(partition: int) -> str:
    """The one name of a predictions partition's drift state (with the labels partition
    of the same number, ADR 0002): its checkpoint's key suffix and the ``stream`` part of
    its signal ids.

    >>> partition_name(2)
    'p2'
    """
    return f"p{partition}"


class DriftCheckpoints:
    """The drift service's state + offsets per consumer group and partition, in Redis.

    Key ``{prefix}:drift:checkpoint:{group}:{name}`` with ``name`` the partition's
    (:func:`partition_name`: the state of predictions partition ``n`` and labels
    partition ``n`` with their two offsets), value zlib-compressed JSON (NaN rejected).
    Keys expire after ``ttl_seconds`` so the checkpoints of old groups go away (as do
    those of the per-assignment format before ADR 0015, ``l0,1,2|p0,1,2``, which are
    no longer read).
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "modelguard", ttl_seconds: int = 7 * 86400
    ) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def key(self, group: str, assignment: str) -> str:
        return f"{self._prefix}:drift:checkpoint:{group}:{assignment}"

    def save(self, group: str, assignment: str, data: Mapping[str, Any]) -> int:
        """Store ``data``; returns the size written in bytes."""
        raw = zlib.compress(json.dumps(data, separators=(",", ":"), allow_nan=False).encode(), 1)
        self._r.set(self.key(group, assignment), raw, ex=self._ttl)
        return len(raw)

    def offsets(self, group: str, partitions: range | list[int]) -> dict[str, int]:
        """The offsets saved with the checkpoints of ``partitions`` (merged)."""
        out: dict[str, int] = {}
        for p in partitions:
            data = self.load(group, partition_name(p))
            if data is not None:
                out.update({str(k): int(v) for k, v in data["offsets"].items()})
        return out

    def load(self, group: str, assignment: str) -> dict[str, Any] | None:
        raw = self._r.get(self.key(group, assignment))
        if raw is None:
            return None
        data = json.loads(zlib.decompress(raw if isinstance(raw, bytes) else raw.encode()))
        if not isinstance(data, dict):
            raise ValueError("drift checkpoint is not a JSON object")
        return data
