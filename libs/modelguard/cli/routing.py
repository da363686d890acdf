"""``modelguard routing show|set|history``: inspect and change routing tables by hand.

    modelguard routing show fraud
    modelguard routing set fraud v1=0.9 v2=0.1 --reason "manual ramp"   # CAS on current
    modelguard routing set fraud v1=1 v2=0 --expected-revision 7        # explicit base
    modelguard routing history fraud --count 20
    modelguard routing register fraud v3                                # before a table names v3

Connection and key prefix come from ``MODELGUARD_REDIS_URL`` / ``MODELGUARD_REDIS_PREFIX``.
Output is JSON (one object, or one per line for ``history``). Exit 1 on a revision
conflict or a missing table; argument errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys


def _weight(text: str) -> tuple[str, float]:
    version, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return version, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VERSION=WEIGHT, got {text!r}") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("routing", help="show or change routing tables in Redis")
    actions = p.add_subparsers(dest="routing_action", required=True)
    show = actions.add_parser("show", help="print a model's current table")
    show.add_argument("model")
    put = actions.add_parser("set", help="write new weights (compare-and-set)")
    put.add_argument("model")
    put.add_argument("weights", nargs="+", type=_weight, metavar="VERSION=WEIGHT")
    put.add_argument("--expected-revision", type=int, default=None)
    put.add_argument("--reason", default="manual change")
    put.add_argument("--actor", default="cli")
    put.add_argument("--experiment-id", default=None)
    reg = actions.add_parser(
        "register", help="register versions a routing table may name (routers refuse others)"
    )
    reg.add_argument("model")
    reg.add_argument("versions", nargs="+", metavar="VERSION")
    hist = actions.add_parser("history", help="print a model's audit entries")
    hist.add_argument("model")
    hist.add_argument("--count", type=int, default=20)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modelguard.adapters.redis_client import make_redis
    from modelguard.adapters.settings import CommonSettings
    from modelguard.core.routing import WeightsError
    from modelguard.routing import RevisionConflictError, RoutingTableStore

    settings = CommonSettings()
    store = RoutingTableStore(make_redis(settings.redis_connection()), settings.redis_keys)
    if args.routing_action == "show":
        table = store.read(args.model)
        if table is None:
            sys.stderr.write(f"model {args.model!r} has no routing table\n")
            return 1
        sys.stdout.write(table.model_dump_json() + "\n")
        return 0
    if args.routing_action == "register":
        store.register_versions(args.model, args.versions)
        registered = sorted(store.registered_versions(args.model))
        sys.stdout.write(json.dumps({"model": args.model, "registered": registered}) + "\n")
        return 0
    if args.routing_action == "history":
        for table in store.history(args.model, count=args.count):
            sys.stdout.write(table.model_dump_json() + "\n")
        return 0
    weights = dict(args.weights)
    expected = args.expected_revision
    if expected is None:
        expected = store.revision(args.model)
    try:
        table = store.write(
            args.model,
            weights,
            expected_revision=expected,
            actor=args.actor,
            reason=args.reason,
            experiment_id=args.experiment_id,
        )
    except WeightsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except RevisionConflictError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps({"model": table.model, "revision": table.revision}) + "\n")
    return 0
