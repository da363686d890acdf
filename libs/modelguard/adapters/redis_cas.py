"""The one compare-and-set script for revisioned records in Redis (routing tables,
experiment specs).

A record is a hash holding ``revision`` and one payload field. In one atomic step the
script checks the stored revision (absent: 0) against the expected one and, when they
agree, stores the payload with the new revision, appends an audit entry to a stream
(``XADD MAXLEN ~``), adds members to index sets and publishes a change notice; else it
changes nothing and returns the current revision. Readers never see half a change.

    cas = CompareAndSet(client)
    ok, revision = cas(
        record="mg:routing:fraud", field="table", payload=table_json,
        expected=3, revision=4, audit=("mg:routing:audit", {"model": "fraud", ...}),
        indexes=[("mg:routing:models", ["fraud"])], channel="mg:routing:changes",
        notice='{"model": "fraud", "revision": 4}', audit_maxlen=AUDIT_MAXLEN,
    )
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

#: Approximate bound of every audit stream (``XADD MAXLEN ~``): routing tables,
#: experiment specs and the control CLI's manual decisions.
AUDIT_MAXLEN = 100_000

#: KEYS: record hash, audit stream, then one index set per index.
#: ARGV: expected revision, new revision, payload field, payload, audit max length,
#: channel, notice, number of audit fields, the audit field/value pairs, then per index
#: the number of members and the members. Returns {1, new revision} or {0, current}.
CAS_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
local revision = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'revision', revision, ARGV[3], ARGV[4])
local i = 9
local audit = {}
for j = 1, 2 * tonumber(ARGV[8]) do
  audit[j] = ARGV[i]
  i = i + 1
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(audit))
for k = 3, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('SADD', KEYS[k], ARGV[i])
    i = i + 1
  end
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1, revision}
"""


class CompareAndSet:
    """The registered :data:`CAS_SCRIPT` on ``client`` (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(CAS_SCRIPT)

    def __call__(
        self,
        *,
        record: str,
        field: str,
        payload: str | bytes,
        expected: int,
        revision: int,
        audit: tuple[str, Mapping[str, str | bytes | int]],
        indexes: Sequence[tuple[str, Sequence[str]]],
        channel: str,
        notice: str,
        audit_maxlen: int,
    ) -> tuple[bool, int]:
        """(True, ``revision``) when stored, else (False, the current revision)."""
        stream, fields = audit
        args: list[str | bytes | int] = [
            expected,
            revision,
            field,
            payload,
            audit_maxlen,
            channel,
            notice,
            len(fields),
        ]
        for name, value in fields.items():
            args += [name, value]
        for _key, members in indexes:
            args += [len(members), *members]
        ok, current = self._script(keys=[record, stream, *(k for k, _ in indexes)], args=args)
        return bool(ok), int(current)
