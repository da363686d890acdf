"""Routing client: which version serves a unit, from a locally cached routing table.

Model servers and the simulator use it on the request path::

    from modelguard.adapters.redis_client import make_redis
    from modelguard.routing import RoutingClient

    router = RoutingClient(make_redis(settings.redis_connection()), settings.redis_keys,
                           models=["fraud"], registry=registry).start()
    version = router.version_for("fraud", unit_id=user_id)     # ~1 µs, no Redis call
    ...
    router.close()

``version_for`` never talks to Redis once a model's table is cached (the first call for
a model loads it synchronously). A background thread subscribes to the change channel
and reloads a table within milliseconds of a write, with a periodic full reload as a
safety net. When Redis is unreachable the last known good tables keep serving; the
outage is logged once, counted (``modelguard_routing_redis_errors_total``,
``modelguard_routing_stale_assignments_total``) and retried with backoff.

A table naming a version that is not registered for its model (the Redis set
``routing-versions:<model>``, filled by ``RoutingTableStore.write`` and
``register_versions``) is refused: the last known good table keeps serving, and the
refusal is logged and counted (``modelguard_routing_tables_refused_total``; ADR 0012).

Pass ``exposures=sdk.emit_exposure`` to emit an :class:`ExposureLogged` for every
assignment of a model whose table has an ``experiment_id``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from modelguard.adapters.clock import utc_now
from modelguard.adapters.prometheus import counter, counter_snapshot, gauge, histogram
from modelguard.contracts.experiments import ExposureLogged
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.routing import RoutingTable
from modelguard.contracts.telemetry import (
    MODELGUARD_ROUTING_PROPAGATION_SECONDS,
    MODELGUARD_ROUTING_REDIS_CONNECTED,
    MODELGUARD_ROUTING_REDIS_ERRORS,
    MODELGUARD_ROUTING_STALE_ASSIGNMENTS,
    MODELGUARD_ROUTING_TABLE_REVISION,
    MODELGUARD_ROUTING_TABLE_UPDATES,
    MODELGUARD_ROUTING_TABLES_REFUSED,
)
from modelguard.core.routing import CompiledTable
from modelguard.errors import DependencyError, ModelguardError
from modelguard.sdk.safelog import safe_logger

log = safe_logger("modelguard.routing")


class RoutingError(ModelguardError, RuntimeError):
    """No routing table can be used for a model."""


class NoRoutingTableError(RoutingError):
    """The model has no routing table in Redis."""


class RoutingUnavailableError(RoutingError, DependencyError):
    """Redis is unreachable and no table of the model was ever loaded."""


#: Assignments remembered per cached table (cleared whole when full, so the memory of a
#: table's cache stays below a few MB; a miss costs one hash, as without the cache).
ASSIGNMENT_CACHE_SIZE = 65_536


class _Entry:
    """A cached table with its compiled form (replaced whole on a change).

    ``assigned`` remembers the version of each unit already routed by this table (a
    pure function of the table and the unit id, so the cache is exact; a new table is a
    new entry with an empty cache). ``quiet`` is True when an assignment of this table
    emits no exposure, so a remembered assignment can be returned at once.
    """

    __slots__ = ("assigned", "compiled", "quiet", "salted", "table")

    def __init__(self, table: RoutingTable, *, exposures: bool) -> None:
        self.table = table
        self.compiled = CompiledTable(table.weights, slots=table.slots, salt=table.salt)
        self.salted: dict[str, CompiledTable] = {}
        self.assigned: dict[str, str] = {}
        self.quiet = not exposures or table.experiment_id is None


class _StaleCollector(Collector):
    """Exposes the hot-path counter kept as a plain int (no lock per call)."""

    def __init__(self, client: RoutingClient) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        family = counter_snapshot(MODELGUARD_ROUTING_STALE_ASSIGNMENTS)
        family.add_metric([], self._client.stale_assignments)
        yield family


class _Metrics:
    def __init__(self, registry: CollectorRegistry, client: RoutingClient) -> None:
        self.revision = gauge(MODELGUARD_ROUTING_TABLE_REVISION, registry)
        self.updates = counter(MODELGUARD_ROUTING_TABLE_UPDATES, registry)
        self.errors = counter(MODELGUARD_ROUTING_REDIS_ERRORS, registry)
        self.refused = counter(MODELGUARD_ROUTING_TABLES_REFUSED, registry)
        self.connected = gauge(MODELGUARD_ROUTING_REDIS_CONNECTED, registry)
        self.propagation = histogram(MODELGUARD_ROUTING_PROPAGATION_SECONDS, registry)
        registry.register(_StaleCollector(client))


class RoutingClient:
    """Cached, change-notified reader of routing tables (see the module docstring).

    ``models`` are loaded on :meth:`start` (others on first use). ``refresh_interval``
    is the period of the full reload; ``clock`` stamps exposure events.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        *,
        models: Iterable[str] = (),
        registry: CollectorRegistry | None = None,
        refresh_interval: float = 30.0,
        exposures: Callable[[ExposureLogged], Any] | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_backoff: float = 2.0,
    ) -> None:
        if refresh_interval <= 0:
            raise ValueError(f"refresh_interval must be > 0, got {refresh_interval}")
        self._redis = client
        self._keys = keys
        self._wanted = list(dict.fromkeys(models))
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._refresh_interval = refresh_interval
        self._exposures = exposures
        self._clock = clock
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry = registry if registry is not None else CollectorRegistry()
        self._metrics = _Metrics(self.registry, self)
        #: False while Redis is unreachable (tables are then the last known good).
        self.connected = False
        self.stale_assignments = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> RoutingClient:
        """Start the change listener (it loads ``models`` once subscribed)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="modelguard-routing", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RoutingClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request path ------------------------------------------------------------------
    def version_for(
        self, model: str, unit_id: str, *, salt: str | None = None, default: str | None = None
    ) -> str:
        """The version of ``model`` serving ``unit_id`` (sticky, weighted).

        ``salt`` overrides the table's salt (experiment id or model name), making this
        assignment independent of others. ``default`` is returned when the model has no
        usable table; without it :class:`RoutingError` is raised.
        """
        entry = self._entries.get(model)
        if (
            entry is not None
            and type(unit_id) is str
            and salt is None
            and entry.quiet
            and self.connected
        ):
            # the request path: a unit seen before under this table (one dict lookup)
            remembered = entry.assigned.get(unit_id)
            if remembered is not None:
                return remembered
        if type(unit_id) is not str or not unit_id:
            raise ValueError(f"unit_id must be a non-empty str, got {unit_id!r}")
        if entry is None:
            try:
                entry = self._load_now(model)
            except RoutingError:
                if default is not None:
                    return default
                raise
        if salt is None:
            version = entry.compiled.choose(unit_id)
            assigned = entry.assigned
            if len(assigned) >= ASSIGNMENT_CACHE_SIZE:
                assigned.clear()
            assigned[unit_id] = version
        else:
            version = self._salted(entry, salt).choose(unit_id)
        if not self.connected:
            self.stale_assignments += 1
        if self._exposures is not None and entry.table.experiment_id is not None:
            self._expose(entry.table, unit_id, version)
        return version

    def _salted(self, entry: _Entry, salt: str) -> CompiledTable:
        compiled = entry.salted.get(salt)
        if compiled is None:
            if len(entry.salted) > 1024:
                entry.salted.clear()
            t = entry.table
            compiled = entry.salted[salt] = CompiledTable(t.weights, slots=t.slots, salt=salt)
        return compiled

    def _expose(self, table: RoutingTable, unit_id: str, version: str) -> None:
        if self._exposures is None or table.experiment_id is None:
            return  # no exposure log, or no experiment on this table: nothing to expose
        try:
            self._exposures(
                ExposureLogged(
                    event_id=uuid.uuid4().hex,
                    experiment_id=table.experiment_id,
                    unit_id=unit_id,
                    arm=version,
                    model=table.model,
                    event_time=self._clock(),
                )
            )
        except Exception:  # an exposure sink must never break routing
            log.exception("exposure_failed", model=table.model, unit_id=unit_id)

    # -- inspection -------------------------------------------------------------------
    def table(self, model: str) -> RoutingTable | None:
        """The cached table of ``model`` (None when not loaded)."""
        entry = self._entries.get(model)
        return None if entry is None else entry.table

    def revision(self, model: str) -> int:
        entry = self._entries.get(model)
        return 0 if entry is None else entry.table.revision

    def wait_for_revision(self, model: str, revision: int, timeout: float = 5.0) -> bool:
        """Block until the cached table of ``model`` reaches ``revision``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.revision(model) < revision:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    # -- loading ----------------------------------------------------------------------
    def _fetch(self, model: str) -> tuple[bytes | None, set[bytes]]:
        """The table JSON of ``model`` and its registered versions (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._keys.routing(model), "table")
        pipe.smembers(self._keys.routing_versions(model))
        raw, versions = pipe.execute()
        return raw, set(versions or ())

    def _load_now(self, model: str) -> _Entry:
        try:
            raw, registered = self._fetch(model)
        except redis.RedisError as exc:
            self._metrics.errors.labels("load").inc()
            raise RoutingUnavailableError(
                f"no routing table of {model!r} loaded and Redis is unreachable: {exc}"
            ) from exc
        if raw is None:
            raise NoRoutingTableError(f"model {model!r} has no routing table")
        entry = self._apply(model, raw, registered)
        if entry is None:
            raise NoRoutingTableError(
                f"model {model!r} has an unreadable or refused routing table (see the logs)"
            )
        if model not in self._wanted:
            self._wanted.append(model)
        return entry

    def _apply(
        self, model: str, raw: bytes | str, registered: set[bytes], *, force: bool = False
    ) -> _Entry | None:
        """Decode and install ``raw`` unless it is older than the cached table or names a
        version outside ``registered`` (then the cached table stays)."""
        try:
            table = RoutingTable.model_validate_json(raw)
            entry = _Entry(table, exposures=self._exposures is not None)
        except (ValidationError, ValueError) as exc:
            self._metrics.errors.labels("decode").inc()
            log.error("routing_table_invalid", model=model, error=str(exc)[:500])
            return None
        unknown = sorted(v for v in table.weights if v.encode() not in registered)
        if unknown or table.model != model:
            self._metrics.refused.labels(model).inc()
            current = self._entries.get(model)
            log.error(
                "routing_table_refused",
                model=model,
                revision=table.revision,
                unregistered_versions=unknown,
                table_model=table.model,
                serving_revision=None if current is None else current.table.revision,
            )
            return current
        with self._changed:
            current = self._entries.get(model)
            if (
                current is not None
                and not force
                and table.revision <= current.table.revision
                and not self._reset(current.table, table)
            ):
                return current
            self._entries[model] = entry
            self._changed.notify_all()
        lag = (self._clock() - table.updated_at).total_seconds()
        self._metrics.propagation.observe(max(lag, 0.0))
        self._metrics.revision.labels(model).set(table.revision)
        self._metrics.updates.labels(model).inc()
        log.info("routing_table_applied", model=model, revision=table.revision)
        return entry

    @staticmethod
    def _reset(cached: RoutingTable, read: RoutingTable) -> bool:
        """Whether ``read`` (from Redis, at a revision not above the cached one) replaces
        a table Redis no longer has: written after it, so the revision counter went back
        (Redis restored from an older snapshot, or the table deleted and written anew).
        Without this the router would serve the lost table until it restarts, ignoring
        every later change, a rollback included. A stale read racing a newer one is
        older than the cached table and is still dropped."""
        if read.updated_at <= cached.updated_at:
            return False
        log.warning(
            "routing_table_revision_reset",
            model=read.model,
            revision=read.revision,
            serving_revision=cached.revision,
        )
        return True

    def _reload(self, model: str, *, force: bool = False) -> None:
        raw, registered = self._fetch(model)
        if raw is not None:
            self._apply(model, raw, registered, force=force)

    def _reload_all(self) -> None:
        for model in list(dict.fromkeys([*self._wanted, *self._entries])):
            self._reload(model)

    def _listen(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._keys.routing_changes)
                self._reload_all()  # after subscribing: no change can fall in between
                if not self.connected:
                    log.info("routing_redis_connected")
                self.connected = True
                self._metrics.connected.set(1)
                backoff = 0.05
                next_full = time.monotonic() + self._refresh_interval
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "message":
                        self._on_notice(message["data"])
                    if time.monotonic() >= next_full:
                        self._reload_all()
                        next_full = time.monotonic() + self._refresh_interval
            except redis.RedisError as exc:
                self._metrics.errors.labels("listen").inc()
                if self.connected:
                    log.warning(
                        "routing_redis_unreachable_serving_last_known_good",
                        error=str(exc),
                        models=sorted(self._entries),
                    )
                self.connected = False
                self._metrics.connected.set(0)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            except Exception:  # never let the listener die: keep the tables fresh
                self._metrics.errors.labels("internal").inc()
                log.exception("routing_listener_failed")
                self.connected = False
                self._metrics.connected.set(0)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
        self.connected = False
        self._metrics.connected.set(0)

    def _on_notice(self, data: bytes) -> None:
        try:
            notice = json.loads(data)
            model = str(notice["model"])
        except (ValueError, KeyError, TypeError):
            self._metrics.errors.labels("decode").inc()
            log.warning("routing_notice_invalid", data=data[:200])
            return
        if model in self._entries or model in self._wanted:
            self._reload(model)
