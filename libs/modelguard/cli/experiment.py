"""``modelguard experiment ...``: manage experiments and read their analysis.

``create --file spec.yaml`` (YAML or JSON), ``start|pause|stop <id>``, ``list``,
``show <id>`` and ``analyze <id>`` (the processor's statistics, recomputed from the
bookkeeping in Redis; read-only). Connection settings come from ``MODELGUARD_*``
variables (``MODELGUARD_REDIS_URL``, ``MODELGUARD_REDIS_PREFIX``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy modules are imported by the handlers (fast `--help`)
    import redis

    from modelguard.adapters.settings import CommonSettings
    from modelguard.contracts.experiments import ExperimentAnalysis
    from modelguard.experiments.registry import ExperimentRegistry


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("experiment", help="create, run and analyse A/B experiments")
    act = p.add_subparsers(dest="action", required=True)
    c = act.add_parser("create", help="create an experiment from a YAML/JSON spec file")
    c.add_argument("--file", required=True, type=Path)
    for name in ("start", "pause", "show"):
        q = act.add_parser(name, help=f"{name} an experiment")
        q.add_argument("experiment_id")
    s = act.add_parser("stop", help="stop an experiment and route all traffic to one arm")
    s.add_argument("experiment_id")
    s.add_argument("--ship", default=None, help="arm to keep (default: the control)")
    act.add_parser("list", help="list experiments")
    a = act.add_parser("analyze", help="print the current analysis of an experiment")
    a.add_argument("experiment_id")
    a.add_argument("--json", action="store_true", help="print the analysis event as JSON")
    a.add_argument(
        "--group",
        default=None,
        help="processor consumer group (default <topic prefix>-experiments)",
    )
    for q in act.choices.values():
        q.add_argument("--actor", default="cli", help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def _registry(settings: CommonSettings, client: redis.Redis) -> ExperimentRegistry:
    from modelguard.contracts.experiments import ExperimentKeys
    from modelguard.experiments.registry import ExperimentRegistry
    from modelguard.routing.store import RoutingTableStore

    return ExperimentRegistry(
        client,
        ExperimentKeys(settings.redis_prefix),
        RoutingTableStore(client, settings.redis_keys),
    )


def _load_spec(path: Path) -> dict[str, Any]:
    import yaml

    from modelguard.experiments.registry import RegistryError

    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"not valid YAML/JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError("the spec must be a mapping of fields")
    return data


def run(args: argparse.Namespace) -> int:
    import redis

    from modelguard.adapters.redis_client import make_redis
    from modelguard.adapters.settings import CommonSettings
    from modelguard.experiments.registry import RegistryError

    settings = CommonSettings()
    client = make_redis(settings.redis_connection())
    try:
        reg = _registry(settings, client)
        return _dispatch(args, reg)
    except RegistryError as exc:
        sys.stderr.write(f"modelguard experiment {args.action}: {exc}\n")
        return 2
    except redis.RedisError as exc:
        sys.stderr.write(f"modelguard experiment: Redis at {settings.redis_url}: {exc}\n")
        return 1
    finally:
        client.close()


def _dispatch(args: argparse.Namespace, reg: ExperimentRegistry) -> int:
    from modelguard.adapters.clock import utc_now
    from modelguard.adapters.settings import CommonSettings
    from modelguard.core.experiments.analysis import analyze
    from modelguard.experiments.registry import RegistryError

    out = sys.stdout.write
    if args.action == "create":
        try:
            spec = reg.create(_load_spec(args.file), actor=args.actor)
        except RegistryError as exc:  # name the file
            raise RegistryError(f"{args.file}: {exc}") from None
        out(f"created {spec.experiment_id} (revision {spec.revision}, draft)\n")
    elif args.action == "start":
        spec = reg.start(args.experiment_id, actor=args.actor)
        out(f"{spec.experiment_id} running on {spec.model}: {reg.current_weights(spec)}\n")
    elif args.action == "pause":
        spec = reg.pause(args.experiment_id, actor=args.actor)
        out(f"{spec.experiment_id} paused: all traffic to {spec.control}\n")
    elif args.action == "stop":
        spec = reg.stop(args.experiment_id, actor=args.actor, ship=args.ship)
        out(f"{spec.experiment_id} stopped: all traffic to {args.ship or spec.control}\n")
    elif args.action == "list":
        for s in reg.all():
            out(f"{s.experiment_id}\t{s.model}\t{s.status}\t{','.join(s.arms)}\n")
    elif args.action == "show":
        out(reg.require(args.experiment_id).model_dump_json(indent=2) + "\n")
    else:
        spec = reg.require(args.experiment_id)
        analysis, _ = analyze(
            spec,
            reg.merged_partial(
                spec.experiment_id, args.group or CommonSettings().consumer_group("experiments")
            ),
            history=reg.history(spec.experiment_id),
            running_p=reg.running_p(spec.experiment_id),
            analysis_id=f"cli-{uuid.uuid4().hex[:12]}",
            now=utc_now(),
        )
        out(analysis.model_dump_json(indent=2) + "\n" if args.json else render(analysis))
    return 0


def _f(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def render(a: ExperimentAnalysis) -> str:
    """A person-readable report of one analysis."""
    lines = [
        f"experiment {a.experiment_id} (model {a.model}, spec revision {a.spec_revision})",
        f"primary metric: {a.primary_metric}; units: {a.total_units}",
        f"recommendation: {a.recommendation.upper()}"
        + (f" -> {a.winner}" if a.winner else "")
        + f"  ({a.reason})",
        f"sample ratio check: p={_f(a.srm_p_value)}"
        + ("  MISMATCH: conclusions frozen" if a.srm_detected else ""),
        "",
        f"{'arm':<14}{'units':>10}{'mean':>10}{'lift':>9}{'95% CI (lift)':>22}"
        f"{'p':>9}{'always-valid p':>16}{'P(beat)':>9}{'loss':>10}  verdict",
    ]
    for r in a.arms:
        ci = (
            f"[{_f(r.relative_ci_low, '+.2%')}, {_f(r.relative_ci_high, '+.2%')}]"
            if r.relative_ci_low is not None
            else "-"
        )
        lines.append(
            f"{r.arm:<14}{r.units:>10}{_f(r.mean):>10}{_f(r.relative_lift, '+.2%'):>9}{ci:>22}"
            f"{_f(r.p_value, '.3g'):>9}{_f(r.holm_p, '.3g'):>16}"
            f"{_f(r.chance_to_beat_control, '.3f'):>9}{_f(r.expected_loss, '.2g'):>10}  "
            f"{r.verdict}" + (" (CUPED)" if r.cuped else "")
        )
    for g in a.guardrails:
        lines.append(
            f"guardrail {g.metric} on {g.arm}: change {_f(g.relative_change, '+.2%')}, "
            f"always-valid p {_f(g.always_valid_p, '.3g')}" + ("  BREACHED" if g.breached else "")
        )
    return "\n".join(lines) + "\n"
