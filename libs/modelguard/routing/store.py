"""Routing table writer/reader on Redis: compare-and-set by revision, atomically.

Used by the rollback controller, the bandit and the CLI::

    from modelguard.adapters.redis_client import make_redis
    from modelguard.routing import RevisionConflictError, RoutingTableStore

    store = RoutingTableStore(make_redis(settings.redis_connection()), settings.redis_keys)
    current = store.read("fraud")                      # RoutingTable | None
    base = current.revision if current else 0          # 0: "the table must not exist"
    try:
        table = store.write("fraud", {"v1": 1.0, "v2": 0.0}, expected_revision=base,
                            actor="controller", reason="rollback: accuracy drop",
                            decision_id=decision.decision_id)
    except RevisionConflictError as exc:                    # someone wrote first
        ...                                            # re-read and decide again
    # or read-modify-write with retries:
    store.update("fraud", lambda t: {"v1": 0.8, "v2": 0.2}, actor="ramp")

One Lua script (:mod:`modelguard.adapters.redis_cas`, shared with the experiment
registry) checks the revision, stores the table with revision + 1, appends the
table to the audit stream, registers its versions (``routing-versions:<model>``, the set
routers check every table against, ADR 0012) and publishes ``{"model", "revision"}`` on
the change channel; Redis runs it atomically, so readers never observe half a change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import redis

from modelguard.adapters.clock import utc_now
from modelguard.adapters.redis_cas import AUDIT_MAXLEN, CompareAndSet
from modelguard.contracts.codec import encode_event
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.routing import RoutingTable
from modelguard.core.routing import assign_slots, validate_weights
from modelguard.errors import ConflictError
from modelguard.sdk.safelog import safe_logger

log = safe_logger("modelguard.routing")


class RevisionConflictError(ConflictError):
    """The table's revision was not the expected one: another writer went first."""

    def __init__(self, model: str, expected: int, current: int) -> None:
        super().__init__(
            f"routing table of {model!r} is at revision {current}, expected {expected}"
        )
        self.model = model
        self.expected = expected
        self.current = current


class RoutingTableStore:
    """Reads and compare-and-set writes of routing tables under ``keys``.

    ``clock`` stamps ``updated_at``; ``audit_maxlen`` bounds the audit stream
    (approximately, ``XADD MAXLEN ~``).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        clock: Callable[[], datetime] = utc_now,
        audit_maxlen: int = AUDIT_MAXLEN,
    ) -> None:
        if audit_maxlen < 1:
            raise ValueError(f"audit_maxlen must be >= 1, got {audit_maxlen}")
        self._redis = client
        self._keys = keys
        self._clock = clock
        self._audit_maxlen = audit_maxlen
        self._cas = CompareAndSet(client)

    @property
    def keys(self) -> RedisKeys:
        return self._keys

    def read(self, model: str) -> RoutingTable | None:
        """The current table of ``model`` (None when it has none)."""
        raw = self._redis.hget(self._keys.routing(model), "table")
        return None if raw is None else RoutingTable.model_validate_json(raw)

    def revision(self, model: str) -> int:
        """The current revision (0 when the model has no table)."""
        raw = self._redis.hget(self._keys.routing(model), "revision")
        return 0 if raw is None else int(raw)

    def write(
        self,
        model: str,
        weights: Mapping[str, float],
        *,
        expected_revision: int,
        actor: str,
        reason: str = "",
        experiment_id: str | None = None,
        keep_experiment: bool = True,
        decision_id: str | None = None,
        known_versions: Collection[str] | None = None,
        base: RoutingTable | None = None,
        experiment_salt: str | None = None,
    ) -> RoutingTable:
        """Replace the weights of ``model`` if its revision is ``expected_revision``.

        Returns the stored table (revision ``expected_revision + 1``); raises
        :class:`RevisionConflictError` when the revision differs and
        :class:`~modelguard.core.routing.WeightsError` for invalid weights. Versions
        missing from ``weights`` leave the table (give weight 0 to keep a version and
        its units' slot). ``experiment_id`` None keeps the current one unless
        ``keep_experiment`` is False. ``experiment_salt`` (the experiment's hashing salt;
        None: the experiment id) is kept with the experiment when not given. ``base`` is
        the table at ``expected_revision`` when the caller already has it (saves a read).
        """
        if isinstance(expected_revision, bool) or not isinstance(expected_revision, int):
            raise TypeError(f"expected_revision must be an int, got {expected_revision!r}")
        if expected_revision < 0:
            raise ValueError(f"expected_revision must be >= 0, got {expected_revision}")
        clean = validate_weights(weights, known_versions=known_versions)
        if base is None or base.revision != expected_revision:
            base = self.read(model) if expected_revision > 0 else None
            if base is not None and base.revision != expected_revision:
                raise RevisionConflictError(model, expected_revision, base.revision)
        if experiment_id is None and keep_experiment and base is not None:
            experiment_id = base.experiment_id
        if (
            experiment_salt is None
            and experiment_id is not None
            and base is not None
            and base.experiment_id == experiment_id
        ):
            experiment_salt = base.experiment_salt
        table = RoutingTable(
            model=model,
            revision=expected_revision + 1,
            weights=clean,
            slots=assign_slots(base.slots if base is not None else {}, clean),
            experiment_id=experiment_id,
            experiment_salt=experiment_salt,
            updated_at=self._clock(),
            actor=actor,
            reason=reason,
            decision_id=decision_id,
        )
        notice = json.dumps({"model": model, "revision": table.revision})
        payload = encode_event(table)
        ok, current = self._cas(
            record=self._keys.routing(model),
            field="table",
            payload=payload,
            expected=expected_revision,
            revision=table.revision,
            audit=(
                self._keys.routing_audit,
                {"model": model, "revision": table.revision, "table": payload},
            ),
            indexes=[
                (self._keys.routing_models, [model]),
                (self._keys.routing_versions(model), sorted(clean)),
            ],
            channel=self._keys.routing_changes,
            notice=notice,
            audit_maxlen=self._audit_maxlen,
        )
        if not ok:
            raise RevisionConflictError(model, expected_revision, current)
        log.info(
            "routing_table_written",
            model=model,
            revision=table.revision,
            weights=clean,
            actor=actor,
            decision_id=decision_id,
        )
        return table

    def update(
        self,
        model: str,
        change: Callable[[RoutingTable | None], Mapping[str, float]],
        *,
        actor: str,
        reason: str = "",
        retries: int = 5,
        **kwargs: object,
    ) -> RoutingTable:
        """Read-modify-write: ``change(current)`` gives the new weights; retried on
        conflict up to ``retries`` times (then :class:`RevisionConflictError` is raised)."""
        for attempt in range(retries + 1):
            current = self.read(model)
            try:
                return self.write(
                    model,
                    change(current),
                    expected_revision=current.revision if current else 0,
                    actor=actor,
                    reason=reason,
                    base=current,
                    **kwargs,  # type: ignore[arg-type]
                )
            except RevisionConflictError:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def history(self, model: str | None = None, count: int = 100) -> list[RoutingTable]:
        """The latest ``count`` audit entries (oldest first), of one model or all."""
        entries: Any = self._redis.xrevrange(self._keys.routing_audit, count=count)
        out: list[RoutingTable] = []
        for _entry_id, fields in reversed(entries or []):
            if model is not None and _text(fields.get(b"model", b"")) != model:
                continue
            out.append(RoutingTable.model_validate_json(fields[b"table"]))
        return out

    def register_versions(self, model: str, versions: Collection[str]) -> None:
        """Register versions of ``model`` before any table names them (``write`` also
        registers the versions it writes)."""
        names = [v for v in versions if isinstance(v, str) and v]
        if len(names) != len(list(versions)):
            raise ValueError(f"versions must be non-empty strings, got {list(versions)!r}")
        if names:
            self._redis.sadd(self._keys.routing_versions(model), *names)

    def registered_versions(self, model: str) -> set[str]:
        """The versions of ``model`` a router accepts in a table."""
        members: Any = self._redis.smembers(self._keys.routing_versions(model))
        return {_text(m) for m in members}

    def models(self) -> list[str]:
        """Names of the models that have a routing table."""
        members: Any = self._redis.smembers(self._keys.routing_models)
        return sorted(_text(m) for m in members)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
