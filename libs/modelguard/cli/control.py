"""``modelguard control ...``: operator commands for the rollback controller.

``status``, ``freeze`` / ``unfreeze`` (the controller then makes no automatic weight
change), ``rollback`` (all traffic to the last known good version), ``promote`` (all
traffic to a version) and ``set-weights``. Every command is audited three ways: the
routing table's audit stream (weight changes, by compare-and-set), the controller's
audit stream in Redis, and a :class:`RoutingDecision` with ``actor`` on Kafka.
Connection settings come from ``MODELGUARD_*`` variables (``CommonSettings``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy modules are imported by the handlers (fast `--help`)
    import redis

    from modelguard.adapters.settings import CommonSettings
    from modelguard.contracts.decisions import ControlKeys, RoutingDecision
    from modelguard.contracts.routing import RoutingTable
    from modelguard.routing import RoutingTableStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("control", help="operate the rollback controller (audited)")
    cmds = p.add_subparsers(dest="control_command", required=True)

    def common(name: str, help_: str) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help_)
        c.add_argument("model")
        c.add_argument("--reason", default="", help="why (kept in the audit trail)")
        c.add_argument("--actor", default=None, help="who (default cli:$USER)")
        c.set_defaults(handler=run)
        return c

    s = cmds.add_parser("status", help="routing table, freeze and controller state")
    s.add_argument("model", nargs="?")
    s.set_defaults(handler=run)
    common("freeze", "stop automatic weight changes for a model")
    common("unfreeze", "let the controller act on a model again")
    common("rollback", "send all traffic to the last known good version").add_argument(
        "--to", default=None, help="version to roll back to (default: last known good)"
    )
    common("promote", "send all traffic to a version").add_argument("version")
    common("set-weights", "set weights, e.g. v1=0.9 v2=0.1").add_argument(
        "weights", nargs="+", metavar="VERSION=WEIGHT"
    )


def parse_weights(items: list[str]) -> dict[str, float]:
    """``["v1=0.9", "v2=0.1"]`` -> ``{"v1": 0.9, "v2": 0.1}`` (errors name the item).

    >>> parse_weights(["v1=0.9", "v2=0.1"])
    {'v1': 0.9, 'v2': 0.1}
    """
    out: dict[str, float] = {}
    for item in items:
        version, sep, value = item.partition("=")
        if not sep or not version:
            raise ValueError(f"{item!r}: expected VERSION=WEIGHT")
        try:
            out[version] = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: weight {value!r} is not a number") from None
    return out


def run(args: argparse.Namespace) -> int:
    from modelguard.adapters.clock import utc_now
    from modelguard.adapters.redis_client import make_redis
    from modelguard.adapters.settings import CommonSettings
    from modelguard.contracts.decisions import ControlKeys
    from modelguard.routing import RevisionConflictError, RoutingTableStore, WeightsError

    settings = CommonSettings()
    client = make_redis(settings.redis_connection())
    store = RoutingTableStore(client, settings.redis_keys)
    keys = ControlKeys(settings.redis_keys.prefix)
    cmd = args.control_command
    if cmd == "status":
        return _status(store, client, keys, args.model)
    actor = args.actor or f"cli:{getpass.getuser()}"
    now = utc_now()
    table = store.read(args.model)
    if cmd in ("freeze", "unfreeze"):
        if cmd == "freeze":
            body = {"actor": actor, "reason": args.reason, "at": now.isoformat()}
            client.hset(keys.frozen, args.model, json.dumps(body))
        else:
            client.hdel(keys.frozen, args.model)
        weights = dict(table.weights) if table else {}
        rev = table.revision if table else None
        decision = _decision(args.model, cmd, args.reason, actor, now, weights, weights, rev, rev)
        return _finish(settings, client, keys, decision, f"{args.model}: {cmd} by {actor}")
    if table is None:
        sys.stderr.write(f"{args.model}: no routing table (nothing to change)\n")
        return 1
    try:
        new = _target(args, table, client, keys)
        written = store.write(
            args.model,
            new,
            expected_revision=table.revision,
            actor=actor,
            reason=args.reason or cmd,
            base=table,
            decision_id=f"dec-cli-{uuid.uuid4().hex[:20]}",
        )
    except (ValueError, WeightsError) as exc:
        sys.stderr.write(f"{args.model}: {exc}\n")
        return 2
    except RevisionConflictError as exc:
        sys.stderr.write(f"{exc}; nothing changed, try again\n")
        return 1
    action = {"set-weights": "set_weights"}.get(cmd, cmd)
    decision = _decision(
        args.model,
        action,
        args.reason or cmd,
        actor,
        now,
        dict(table.weights),
        dict(written.weights),
        table.revision,
        written.revision,
        decision_id=written.decision_id,
    )
    return _finish(
        settings,
        client,
        keys,
        decision,
        f"{args.model}: revision {written.revision}, weights {_fmt(written.weights)}",
    )


def _target(
    args: argparse.Namespace, table: RoutingTable, client: redis.Redis, keys: ControlKeys
) -> dict[str, float]:
    versions = list(table.weights)
    if args.control_command == "set-weights":
        weights = parse_weights(args.weights)
        return {**dict.fromkeys(versions, 0.0), **weights}
    if args.control_command == "promote":
        target = args.version
    else:
        target = (
            args.to
            or _last_known_good(client, keys, args.model)
            or max(versions, key=lambda v: table.weights[v])
        )
    if target not in versions:
        raise ValueError(f"unknown version {target!r} (known: {', '.join(versions)})")
    return {v: 1.0 if v == target else 0.0 for v in versions}


def _last_known_good(client: redis.Redis, keys: ControlKeys, model: str) -> str | None:
    raw = client.get(keys.state)
    if raw is None:
        return None
    champion = json.loads(raw).get("models", {}).get(model, {}).get("champion")
    return champion if isinstance(champion, str) else None


def _decision(
    model: str,
    action: str,
    reason: str,
    actor: str,
    now: datetime,
    old: dict[str, float],
    new: dict[str, float],
    before: int | None,
    after: int | None,
    decision_id: str | None = None,
) -> RoutingDecision:
    from modelguard.contracts.decisions import RoutingDecision

    return RoutingDecision.model_validate(
        {
            "decision_id": decision_id or f"dec-cli-{uuid.uuid4().hex[:20]}",
            "model": model,
            "action": action,
            "reason": reason or action,
            "actor": actor,
            "old_weights": old,
            "new_weights": new,
            "revision_before": before,
            "revision_after": after,
            "decided_at": now,
        }
    )


def _finish(
    settings: CommonSettings,
    client: redis.Redis,
    keys: ControlKeys,
    decision: RoutingDecision,
    message: str,
) -> int:
    from modelguard.adapters.kafka import make_producer
    from modelguard.adapters.redis_cas import AUDIT_MAXLEN
    from modelguard.contracts.codec import encode_event
    from modelguard.contracts.decisions import RoutingDecision

    client.xadd(
        keys.audit,
        {
            "model": decision.model,
            "action": decision.action,
            "actor": decision.actor,
            "reason": decision.reason,
            "decision_id": decision.decision_id,
            "at": decision.decided_at.isoformat(),
        },
        maxlen=AUDIT_MAXLEN,
        approximate=True,
    )
    producer = make_producer(settings.kafka_connection())
    producer.produce(
        settings.topics.routing_decisions,
        key=decision.model.encode(),
        value=encode_event(decision),
        headers=[("event_type", RoutingDecision.schema_name.encode())],
    )
    if producer.flush(10):
        sys.stderr.write("warning: the decision event was not confirmed by Kafka\n")
        sys.stdout.write(message + "\n")
        return 1
    sys.stdout.write(message + f" (decision {decision.decision_id})\n")
    return 0


def _fmt(weights: dict[str, float]) -> str:
    return ", ".join(f"{v}={w:g}" for v, w in sorted(weights.items()))


def _status(
    store: RoutingTableStore, client: redis.Redis, keys: ControlKeys, model: str | None
) -> int:
    models = [model] if model else store.models()
    frozen = client.hgetall(keys.frozen)
    for m in models:
        table = store.read(m)
        if table is None:
            sys.stdout.write(f"{m}: no routing table\n")
            continue
        flag = " FROZEN" if m.encode() in frozen else ""
        lkg = _last_known_good(client, keys, m) or "?"
        sys.stdout.write(
            f"{m}: revision {table.revision}, weights {_fmt(table.weights)},"
            f" last known good {lkg}, by {table.actor}{flag}\n"
        )
    return 0
