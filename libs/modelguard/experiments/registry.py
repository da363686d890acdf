"""The experiment registry: specs in Redis, changed by compare-and-set, audited.

Each spec lives in a hash (``ExperimentKeys.spec``: ``revision`` and ``spec`` JSON); the
shared compare-and-set script (:mod:`modelguard.adapters.redis_cas`) writes it only when
the stored revision is the expected one, and in the same step appends to the audit
stream, updates the indexes and publishes a change notice. Starting, pausing, stopping
and every split change (ramp, bandit, manual) also write the model's routing table
through the routing table writer (issue 3's ``RoutingTableStore``, compare-and-set on
its own revision) with the experiment id and its ``salt`` (the hash salt of the
assignment; default: the experiment id), which is what routing clients read to assign
units, and append to the split history used by the sample-ratio check.

One model runs at most one experiment at a time (its routing table carries a single
experiment id); twenty experiments on twenty models run side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from modelguard.adapters.clock import utc_now
from modelguard.adapters.redis_cas import AUDIT_MAXLEN, CompareAndSet
from modelguard.contracts.codec import format_validation_error
from modelguard.contracts.experiments import ExperimentKeys, ExperimentSpec
from modelguard.contracts.routing import RoutingTable
from modelguard.core.experiments.analysis import SplitEpoch
from modelguard.core.experiments.bandit import ramp_split
from modelguard.core.experiments.bookkeeping import ExperimentPartial, merge_partials
from modelguard.errors import ConflictError, InvalidInputError
from modelguard.routing.writer import RoutingWriter

log = structlog.get_logger("modelguard.experiments.registry")


class RegistryError(InvalidInputError):
    """A refused registry change; the message says what is wrong."""


class SpecRevisionError(RegistryError):
    pass


class ExperimentRegistry:
    def __init__(
        self,
        client: redis.Redis,
        keys: ExperimentKeys,
        routing: RoutingWriter,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._routing = routing
        self._clock = clock
        self._cas = CompareAndSet(client)

    @property
    def keys(self) -> ExperimentKeys:
        return self._keys

    # -- reads -----------------------------------------------------------------------
    def get(self, experiment_id: str) -> ExperimentSpec | None:
        raw = self._redis.hget(self._keys.spec(experiment_id), "spec")
        return None if raw is None else ExperimentSpec.model_validate_json(raw)

    def require(self, experiment_id: str) -> ExperimentSpec:
        spec = self.get(experiment_id)
        if spec is None:
            raise RegistryError(f"no experiment {experiment_id!r}")
        return spec

    def all(self, status: str | None = None) -> list[ExperimentSpec]:
        ids: Any = self._redis.smembers(self._keys.index)
        specs = [s for s in (self.get(_text(i)) for i in sorted(ids)) if s is not None]
        return [s for s in specs if status is None or s.status == status]

    def history(self, experiment_id: str) -> list[SplitEpoch]:
        raw: Any = self._redis.lrange(self._keys.split_history(experiment_id), 0, -1)
        out = []
        for item in raw:
            d = json.loads(item)
            out.append(SplitEpoch(start=float(d["from"]), weights=dict(d["weights"])))
        return out

    def audit(self, experiment_id: str | None = None, count: int = 100) -> list[dict[str, str]]:
        entries: Any = self._redis.xrevrange(self._keys.audit, count=count)
        rows = [{_text(k): _text(v) for k, v in f.items()} for _id, f in reversed(entries)]
        return [r for r in rows if experiment_id is None or r["experiment_id"] == experiment_id]

    def merged_partial(self, experiment_id: str, group: str) -> ExperimentPartial:
        """Bookkeeping of the experiment summed over every task of processor ``group``."""
        raw: Any = self._redis.hgetall(self._keys.partials(experiment_id))
        return merge_partials(
            ExperimentPartial.from_dict(json.loads(v))
            for k, v in raw.items()
            if _text(k).rsplit(":", 1)[0] == group
        )

    def running_p(self, experiment_id: str) -> dict[str, float]:
        """Sequential state of earlier looks (``metric:arm`` -> always-valid p, plus the
        running confidence sequence under ``metric:arm:cs_low`` / ``:cs_high``)."""
        stored: Any = self._redis.hgetall(self._keys.sequential(experiment_id))
        return {_text(k): float(v) for k, v in stored.items()}

    # -- writes ----------------------------------------------------------------------
    def _store(
        self, spec: ExperimentSpec, expected: int, action: str, actor: str
    ) -> ExperimentSpec:
        new = spec.model_copy(update={"revision": expected + 1, "updated_at": self._clock()})
        payload = new.model_dump_json()
        eid = spec.experiment_id
        ok, current = self._cas(
            record=self._keys.spec(eid),
            field="spec",
            payload=payload,
            expected=expected,
            revision=expected + 1,
            audit=(
                self._keys.audit,
                {
                    "experiment_id": eid,
                    "action": action,
                    "actor": actor,
                    "revision_before": expected,
                    "revision_after": expected + 1,
                    "spec": payload,
                },
            ),
            indexes=[(self._keys.index, [eid]), (self._keys.by_model(spec.model), [eid])],
            channel=self._keys.changes,
            notice=f"{eid} {expected + 1}",
            audit_maxlen=AUDIT_MAXLEN,
        )
        if not ok:
            raise SpecRevisionError(
                f"experiment {spec.experiment_id!r} is at revision {current}, not {expected}"
            )
        log.info(
            "experiment_changed",
            experiment_id=spec.experiment_id,
            action=action,
            actor=actor,
            revision=expected + 1,
        )
        return new

    def create(self, data: Mapping[str, Any], *, actor: str) -> ExperimentSpec:
        """Validate and store a new experiment (status draft)."""
        payload = {**data, "status": "draft", "revision": 0, "updated_at": self._clock()}
        payload.setdefault("salt", payload.get("experiment_id"))
        spec = _validate(payload)
        if self.get(spec.experiment_id) is not None:
            raise RegistryError(f"experiment {spec.experiment_id!r} already exists")
        return self._store(spec, 0, "create", actor)

    def update(
        self, experiment_id: str, changes: Mapping[str, Any], *, expected_revision: int, actor: str
    ) -> ExperimentSpec:
        """Change fields of a draft or paused experiment (arms, metrics and salt are fixed
        once it has started)."""
        spec = self.require(experiment_id)
        frozen = {"experiment_id", "model", "status", "revision", "started_at", "updated_at"}
        if spec.started_at is not None:
            frozen |= {"control", "treatments", "salt", "primary_metric", "primary_kind"}
        bad = sorted(set(changes) & frozen)
        if bad:
            raise RegistryError(f"cannot change {', '.join(bad)} of experiment {experiment_id!r}")
        if spec.status == "running" and set(changes) - {"description", "guardrails"}:
            raise RegistryError(f"pause experiment {experiment_id!r} before changing it")
        new = _validate({**spec.model_dump(), **changes})
        return self._store(new, expected_revision, "update", actor)

    def start(self, experiment_id: str, *, actor: str) -> ExperimentSpec:
        """Run (or resume) the experiment: route its split, assigning units with its salt."""
        spec = self.require(experiment_id)
        if spec.status == "running":
            return spec
        if spec.status == "stopped":
            raise RegistryError(f"experiment {experiment_id!r} is stopped")
        for other in self.all("running"):
            if other.model == spec.model:
                raise RegistryError(
                    f"model {spec.model!r} already runs experiment {other.experiment_id!r}"
                )
        now = self._clock()
        started = spec.started_at or now
        running = spec.model_copy(update={"status": "running", "started_at": started})
        stored = self._store(running, spec.revision, "start", actor)
        self.set_split(stored, ramp_split(stored, now), actor=actor, reason="experiment start")
        return stored

    def pause(self, experiment_id: str, *, actor: str) -> ExperimentSpec:
        """Stop assigning units to treatments: all traffic to the control."""
        spec = self.require(experiment_id)
        if spec.status != "running":
            raise RegistryError(f"experiment {experiment_id!r} is {spec.status}, not running")
        stored = self._store(
            spec.model_copy(update={"status": "paused"}), spec.revision, "pause", actor
        )
        self._route(stored, {spec.control: 1.0}, actor, "experiment paused", keep=False)
        return stored

    def stop(self, experiment_id: str, *, actor: str, ship: str | None = None) -> ExperimentSpec:
        """End the experiment; all traffic to ``ship`` (default: the control)."""
        spec = self.require(experiment_id)
        target = ship or spec.control
        if target not in spec.arms:
            raise RegistryError(f"{target!r} is not an arm of {experiment_id!r}: {spec.arms}")
        stored = self._store(
            spec.model_copy(update={"status": "stopped"}), spec.revision, "stop", actor
        )
        if spec.status in ("running", "paused"):
            self._route(
                stored, {target: 1.0}, actor, f"experiment stopped, shipping {target}", keep=False
            )
        return stored

    def set_split(
        self, spec: ExperimentSpec, weights: Mapping[str, float], *, actor: str, reason: str
    ) -> RoutingTable:
        """Route ``weights`` over the arms (ramp, bandit or manual) and record the epoch."""
        if set(weights) - set(spec.arms):
            raise RegistryError(f"weights name arms outside {spec.arms}: {sorted(weights)}")
        full = {a: float(weights.get(a, 0.0)) for a in spec.arms}
        table = self._route(spec, full, actor, reason, keep=True)
        self._redis.rpush(
            self._keys.split_history(spec.experiment_id),
            json.dumps({"from": table.updated_at.timestamp(), "weights": full}),
        )
        return table

    def current_weights(self, spec: ExperimentSpec) -> dict[str, float]:
        table = self._routing.read(spec.model)
        if table is None or table.experiment_id != spec.experiment_id:
            return {}
        return dict(table.weights)

    def _route(
        self,
        spec: ExperimentSpec,
        weights: Mapping[str, float],
        actor: str,
        reason: str,
        *,
        keep: bool,
    ) -> RoutingTable:
        for attempt in range(5):
            current = self._routing.read(spec.model)
            base = dict(current.weights) if current else {}
            # versions outside the experiment keep their slot with weight 0
            full = {v: 0.0 for v in base} | dict(weights)
            try:
                return self._routing.write(
                    spec.model,
                    full,
                    expected_revision=current.revision if current else 0,
                    actor=actor,
                    reason=f"{spec.experiment_id}: {reason}",
                    experiment_id=spec.experiment_id if keep else None,
                    keep_experiment=keep,
                    experiment_salt=spec.salt if keep else None,
                )
            except ConflictError:  # another writer went first (RevisionConflictError): retry
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _validate(payload: Mapping[str, Any]) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(dict(payload))
    except ValidationError as exc:
        msg = format_validation_error(exc).replace("<event>: Value error, ", "")
        raise RegistryError(f"invalid experiment: {msg}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
