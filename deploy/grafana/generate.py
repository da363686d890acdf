"""Grafana dashboards as code: ``python deploy/grafana/generate.py [--check]``.

Builds the modelguard dashboards with grafana-foundation-sdk (pinned exactly in the dev
dependencies) and writes them to ``deploy/grafana/dashboards/*.json``, the files Grafana
provisions (docker-compose mounts them; the Helm chart leaves Grafana to its own chart).
``--check`` writes nothing and exits 1 when a committed file differs from the generator.

Every query selects ``job=~"$job"`` so one service (or one test's scrape target) can be
isolated. Metric names come from the catalogue (``modelguard.contracts.telemetry``).
Every name has one exporter (ADR 0014), so rates are summed over its replicas and never
count an event twice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import DataSourceRef, StackingMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from modelguard.contracts import telemetry as t
from modelguard.contracts.telemetry import Family

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
MV = 'job=~"$job", model_name=~"$model", model_version=~"$version"'
M = 'job=~"$job", model_name=~"$model"'
J = 'job=~"$job"'


def _sample(family: Family, suffix: str) -> str:
    name = f"{family.name}_{suffix}" if suffix else family.name
    if name not in family.series:
        raise ValueError(f"{family.name} ({family.kind}) has no sample {name}")
    return name


def n(family: Family) -> str:
    """A gauge's name, from the catalogue (``modelguard.contracts.telemetry``)."""
    return _sample(family, "")


def total(family: Family) -> str:
    return _sample(family, "total")


def bucket(family: Family) -> str:
    return _sample(family, "bucket")


def sum_(family: Family) -> str:
    return _sample(family, "sum")


def count(family: Family) -> str:
    return _sample(family, "count")


def q(expr: str, legend: str = "") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")


def ts(title: str, unit: str, *targets: prometheus.Dataquery, desc: str = "") -> timeseries.Panel:
    p = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12)
    p = p.description(desc) if desc else p
    for target in targets:
        p = p.with_target(target)
    return p


def stacked(p: timeseries.Panel) -> timeseries.Panel:
    return p.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(30)


def st(title: str, unit: str, target: prometheus.Dataquery, desc: str = "") -> stat.Panel:
    p = stat.Panel().title(title).unit(unit).datasource(DS).height(5).span(6).with_target(target)
    return p.description(desc) if desc else p


def variable(name: str, query: str, label: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .definition(query)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def base(uid: str, title: str, desc: str, *, versions: bool = True) -> dash.Dashboard:
    d = (
        dash.Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["modelguard"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(variable("job", "label_values(up, job)", "Job"))
        .with_variable(
            variable(
                "model", f"label_values({total(t.MODEL_PREDICTIONS)}{{{J}}}, model_name)", "Model"
            )
        )
    )
    if versions:
        d = d.with_variable(
            variable(
                "version",
                f"label_values({total(t.MODEL_PREDICTIONS)}{{{M}}}, model_version)",
                "Version",
            )
        )
    return d


def summed(metric: str, by: str, selector: str = MV, window: str = "$__rate_interval") -> str:
    """rate(metric) summed over the replicas of its one exporter (ADR 0014: every name has
    one exporter, so nothing is counted twice)."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{window}]))"


def latest(family: Family, by: str = "model_name, model_version", selector: str = MV) -> str:
    """The gauge ``family`` per ``by`` (the largest where several series fold into one)."""
    return f"max by ({by}) ({n(family)}{{{selector}}})"


def table_target(expr: str) -> prometheus.Dataquery:
    """An instant query shown as table rows."""
    return q(expr).instant().format(PromQueryFormat.TABLE)


def stacked_rate(title: str, family: Family, by: str, legend: str) -> timeseries.Panel:
    """Stacked per-second rate of the counter ``family`` over the selection, summed ``by``."""
    return stacked(ts(title, "reqps", q(summed(total(family), by), legend)))


def latency(quantile: str) -> prometheus.Dataquery:
    inner = summed(
        bucket(t.MODEL_INFERENCE_DURATION_SECONDS),
        "le, model_name, model_version",
        MV + ', stage="$stage"',
    )
    return q(
        f"histogram_quantile({quantile}, {inner})",
        f"p{quantile[2:].ljust(2, '0')} {{{{model_name}}}} {{{{model_version}}}}",
    )


def model_performance() -> dash.Dashboard:
    quality = [
        ("Accuracy", t.MODEL_ACCURACY),
        ("Precision", t.MODEL_PRECISION),
        ("Recall", t.MODEL_RECALL),
        ("F1 score", t.MODEL_F1_SCORE),
    ]
    d = base(
        "modelguard-model-performance",
        "modelguard / Model performance",
        "Quality over the last N labelled predictions, latency, volume and errors per version.",
    ).with_variable(
        dash.CustomVariable("stage")
        .label("Latency stage")
        .values(",".join((t.TOTAL_STAGE, *t.LATENCY_STAGES)))
        .current(model.VariableOption(selected=True, text=t.TOTAL_STAGE, value=t.TOTAL_STAGE))
    )
    d = d.with_row(dash.Row("Quality (last N labelled predictions)"))
    for title, family in quality:
        d = d.with_panel(
            st(
                title,
                "percentunit",
                q(latest(family), "{{model_version}}"),
                f"{n(family)} per model version, from the metrics processor.",
            )
        )
    d = d.with_panel(
        ts(
            "Quality over time",
            "percentunit",
            *(
                q(latest(family), f"{title} {{{{model_name}}}} {{{{model_version}}}}")
                for title, family in quality
            ),
        )
        .min(0)
        .max(1)
    )
    d = d.with_panel(
        ts(
            "Accuracy drop vs baseline",
            "percent",
            q(latest(t.MODEL_ACCURACY_DROP_PERCENT, "model_name", M), "{{model_name}}"),
            desc="Largest accuracy drop among a model's versions, percent of its baseline.",
        )
    )
    d = d.with_row(dash.Row("Latency"))
    d = d.with_panel(
        ts(
            "Inference latency percentiles",
            "s",
            latency("0.5"),
            latency("0.95"),
            latency("0.99"),
            desc=f"From {t.MODEL_INFERENCE_DURATION_SECONDS.name} (the metrics processor, "
            "from the prediction events of every model server), for the selected stage.",
        )
    )
    d = d.with_panel(
        ts(
            "Mean latency by stage",
            "s",
            q(
                f"{summed(sum_(t.MODEL_INFERENCE_DURATION_SECONDS), 'stage')}"
                f" / {summed(count(t.MODEL_INFERENCE_DURATION_SECONDS), 'stage')}",
                "{{stage}}",
            ),
        )
    )
    sdk_p95 = summed(bucket(t.MODELGUARD_SDK_INFERENCE_DURATION_SECONDS), "le, stage")
    d = d.with_panel(
        ts(
            "Model-server stage latency p95 (SDK)",
            "s",
            q(f"histogram_quantile(0.95, {sdk_p95})", "{{stage}}"),
            desc=f"From {t.MODELGUARD_SDK_INFERENCE_DURATION_SECONDS.name}: the stages as "
            "timed in the model servers (sdk.timer), live, without the event pipeline.",
        ).span(24)
    )
    d = d.with_row(dash.Row("Volume and errors"))
    d = d.with_panel(
        stacked_rate(
            "Prediction volume",
            t.MODEL_PREDICTIONS,
            "model_name, model_version",
            "{{model_name}} {{model_version}}",
        )
    )
    d = d.with_panel(
        stacked_rate(
            "Predictions by class",
            t.MODEL_PREDICTIONS,
            "model_name, predicted_class",
            "{{model_name}} class {{predicted_class}}",
        )
    )
    errors = summed(total(t.MODEL_PREDICTION_ERRORS), "model_name, model_version")
    served = summed(total(t.MODEL_PREDICTIONS), "model_name, model_version")
    d = d.with_panel(
        ts(
            "Error rate",
            "percentunit",
            q(
                f"{errors} / ({errors} + {served})",
                "{{model_name}} {{model_version}}",
            ),
            desc="Failed predictions over all predictions (served + failed).",
        )
    )
    d = d.with_panel(
        stacked_rate(
            "Errors by type",
            t.MODEL_PREDICTION_ERRORS,
            "model_name, error_type",
            "{{model_name}} {{error_type}}",
        )
    )
    d = d.with_panel(
        ts(
            "Label coverage",
            "percentunit",
            q(latest(t.MODEL_LABEL_COVERAGE_RATIO), "{{model_name}} {{model_version}}"),
            desc="Share of resolved predictions that got their label in time.",
        )
    )
    return d


def drift() -> dash.Dashboard:
    mvf = MV + ', feature=~"$feature"'
    d = base(
        "modelguard-drift",
        "modelguard / Drift",
        "Data and concept drift per model version and feature (last closed window).",
    ).with_variable(
        variable("feature", f"label_values({n(t.PSI_SCORE)}{{{MV}}}, feature)", "Feature").current(
            model.VariableOption(selected=True, text="All", value="$__all")
        )
    )
    d = d.with_row(dash.Row("Verdicts"))
    d = d.with_panel(
        st("Data drift detected", "bool_yes_no", q(latest(t.MODEL_DATA_DRIFT_DETECTED)))
    )
    d = d.with_panel(
        st(
            "Concept drift detected",
            "bool_yes_no",
            q(latest(t.MODEL_CONCEPT_DRIFT_DETECTED, "model_name", M)),
            "From the drift processor (error-rate ADWIN, per version) and the metrics "
            "processor (accuracy drop, per model); 1 when either fires.",
        )
    )
    d = d.with_panel(st("Drifted columns", "percentunit", q(latest(t.MODEL_DRIFTED_COLUMNS_RATIO))))
    d = d.with_panel(
        st(
            "Drift signals (1h)",
            "short",
            q(f"sum by (model_name) (increase({total(t.MODEL_DRIFT_SIGNALS)}{{{M}}}[1h]))"),
        )
    )
    d = d.with_panel(
        ts(
            "Data and concept drift",
            "short",
            q(latest(t.MODEL_DATA_DRIFT_DETECTED), "data {{model_name}} {{model_version}}"),
            q(latest(t.MODEL_CONCEPT_DRIFT_DETECTED, "model_name", M), "concept {{model_name}}"),
        )
        .min(0)
        .max(1)
    )
    d = d.with_panel(
        ts(
            "Drifted columns ratio",
            "percentunit",
            q(latest(t.MODEL_DRIFTED_COLUMNS_RATIO), "{{model_name}} {{model_version}}"),
        )
        .min(0)
        .max(1)
    )
    d = d.with_row(dash.Row("Per feature"))
    by_feature = "model_name, model_version, feature"
    d = d.with_panel(
        ts(
            "PSI by feature",
            "short",
            q(latest(t.PSI_SCORE, by_feature, mvf), "{{feature}} {{model_version}}"),
            desc="Population stability index; 0.1 moderate, 0.25 significant shift.",
        )
    )
    d = d.with_panel(
        ts(
            "KS statistic by feature",
            "short",
            q(latest(t.KS_STATISTIC, by_feature, mvf), "{{feature}} {{model_version}}"),
        )
    )
    features_now = table.Panel().title("Features now").datasource(DS).height(8).span(24)
    for family in (t.PSI_SCORE, t.KS_STATISTIC, t.MODEL_FEATURE_DRIFT_SEVERITY):
        features_now = features_now.with_target(table_target(latest(family, by_feature, mvf)))
    d = d.with_panel(features_now)
    return d


def rollout() -> dash.Dashboard:
    d = base(
        "modelguard-rollout",
        "modelguard / Rollout and controller",
        "Routing weights, verdicts, decisions and health of the rollback controller.",
    )
    d = d.with_row(dash.Row("Controller"))
    d = d.with_panel(
        st(
            "Leader replicas",
            "short",
            q(f"sum({n(t.MODELGUARD_CONTROLLER_LEADER)}{{{J}}})"),
            "Replicas holding the controller lease; anything but 1 needs attention.",
        )
    )
    d = d.with_panel(
        st(
            "Open incidents",
            "short",
            q(f"sum({n(t.MODELGUARD_CONTROLLER_OPEN_INCIDENTS)}{{{M}}})"),
        )
    )
    d = d.with_panel(
        st(
            "Rollbacks (24h)",
            "short",
            q(
                f"sum(increase({total(t.MODELGUARD_CONTROLLER_DECISIONS)}"
                f'{{{M}, action="rollback", dry_run="false"}}[24h]))'
            ),
        )
    )
    d = d.with_panel(
        st(
            "Decision latency p95",
            "s",
            q(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate({bucket(t.MODELGUARD_CONTROLLER_APPLY_SECONDS)}{{{J}}}[$__rate_interval])))"
            ),
            "From the start of an evaluation to the decision applied and published.",
        )
    )
    d = d.with_row(dash.Row("Routing"))
    d = d.with_panel(
        stacked(
            ts(
                "Traffic weight by version",
                "percentunit",
                q(latest(t.MODELGUARD_ROUTING_WEIGHT), "{{model_name}} {{model_version}}"),
                desc="Weights in the routing table as last read by the controller.",
            )
        )
    )
    d = d.with_panel(
        ts(
            "Verdicts",
            "short",
            q(
                latest(t.MODELGUARD_CONTROLLER_VERDICT, "model_name, model_version, status")
                + " == 1",
                "{{model_name}} {{model_version}} {{status}}",
            ),
            desc="Current status per version: healthy, breach, inconclusive or error.",
        )
    )
    d = d.with_panel(
        stacked(
            ts(
                "Decisions",
                "short",
                q(
                    "sum by (model_name, action) "
                    f"(increase({total(t.MODELGUARD_CONTROLLER_DECISIONS)}"
                    f"{{{M}}}[$__rate_interval]))",
                    "{{model_name}} {{action}}",
                ),
            )
        )
    )
    d = d.with_panel(
        ts(
            "Routing table conflicts and errors",
            "ops",
            q(
                summed(total(t.MODELGUARD_CONTROLLER_CAS_CONFLICTS), "model_name", M),
                "CAS conflicts {{model_name}}",
            ),
            q(
                summed(total(t.MODELGUARD_ROUTING_REDIS_ERRORS), "operation", J),
                "client Redis errors {{operation}}",
            ),
        )
    )
    d = d.with_row(dash.Row("Pipeline health"))
    d = d.with_panel(
        ts(
            "Events consumed",
            "ops",
            q(
                summed(total(t.MODELGUARD_EVENTS_CONSUMED), "service, outcome", J),
                "{{service}} {{outcome}}",
            ),
        )
    )
    d = d.with_panel(
        ts(
            "Dead letters",
            "ops",
            q(
                summed(total(t.MODELGUARD_DEAD_LETTERS), "service, error_kind", J),
                "{{service}} {{error_kind}}",
            ),
        )
    )
    return d


DASHBOARDS: dict[str, Callable[[], Builder[model.Dashboard]]] = {
    "model-performance.json": model_performance,
    "drift.json": drift,
    "rollout.json": rollout,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {name: encoder.encode(build().build()) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        sys.stderr.write(
            f"stale dashboards {stale}: run `.venv/bin/python deploy/grafana/generate.py`\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
