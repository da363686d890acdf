"""Grafana dashboards as code: ``python deploy/grafana/generate.py [--check]``.

Builds the modelguard dashboards with grafana-foundation-sdk (pinned exactly in the dev
dependencies) and writes them to ``deploy/grafana/dashboards/*.json``, the files Grafana
provisions (docker-compose mounts them; the Helm chart leaves Grafana to its own chart).
``--check`` writes nothing and exits 1 when a committed file differs from the generator.

Every query selects ``job=~"$job"`` so one service (or one test's scrape target) can be
isolated. Series that two services both export for the same predictions (the edge
validator and the metrics processor, or the SDK and the metrics processor) are summed
per job and then maxed across jobs, so they are never double counted.
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

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
MV = 'job=~"$job", model_name=~"$model", model_version=~"$version"'
M = 'job=~"$job", model_name=~"$model"'
J = 'job=~"$job"'


def q(expr: str, legend: str = "") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")


def ts(title: str, unit: str, *targets: prometheus.Dataquery, desc: str = "") -> timeseries.Panel:
    p = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12)
    p = p.description(desc) if desc else p
    for t in targets:
        p = p.with_target(t)
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
            variable("model", f"label_values(model_predictions_total{{{J}}}, model_name)", "Model")
        )
    )
    if versions:
        d = d.with_variable(
            variable(
                "version",
                f"label_values(model_predictions_total{{{M}}}, model_version)",
                "Version",
            )
        )
    return d


def per_job_max(metric: str, by: str, selector: str = MV, window: str = "$__rate_interval") -> str:
    """rate(metric) summed per job (replicas), then maxed across jobs (same events)."""
    return f"max by ({by}) (sum by (job, {by}) (rate({metric}{{{selector}}}[{window}])))"


def latency(quantile: str) -> prometheus.Dataquery:
    inner = per_job_max(
        "model_inference_duration_seconds_bucket",
        "le, model_name, model_version",
        MV + ', stage="$stage"',
    )
    return q(
        f"histogram_quantile({quantile}, {inner})",
        f"p{quantile[2:].ljust(2, '0')} {{{{model_name}}}} {{{{model_version}}}}",
    )


def model_performance() -> dash.Dashboard:
    quality = [
        ("Accuracy", "model_accuracy"),
        ("Precision", "model_precision"),
        ("Recall", "model_recall"),
        ("F1 score", "model_f1_score"),
    ]
    d = base(
        "modelguard-model-performance",
        "modelguard / Model performance",
        "Quality over the last N labelled predictions, latency, volume and errors per version.",
    ).with_variable(
        dash.CustomVariable("stage")
        .label("Latency stage")
        .values("total,inference,preprocessing,postprocessing")
        .current(model.VariableOption(selected=True, text="total", value="total"))
    )
    d = d.with_row(dash.Row("Quality (last N labelled predictions)"))
    for title, metric in quality:
        d = d.with_panel(
            st(
                title,
                "percentunit",
                q(f"max by (model_name, model_version) ({metric}{{{MV}}})", "{{model_version}}"),
                f"{metric} per model version, from the metrics processor.",
            )
        )
    d = d.with_panel(
        ts(
            "Quality over time",
            "percentunit",
            *(
                q(
                    f"max by (model_name, model_version) ({metric}{{{MV}}})",
                    f"{title} {{{{model_name}}}} {{{{model_version}}}}",
                )
                for title, metric in quality
            ),
        )
        .min(0)
        .max(1)
    )
    d = d.with_panel(
        ts(
            "Accuracy drop vs baseline",
            "percent",
            q(
                f"max by (model_name) (model_accuracy_drop_percent{{{M}}})",
                "{{model_name}}",
            ),
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
            desc="From model_inference_duration_seconds (SDK and metrics processor, "
            "deduplicated), for the selected stage.",
        )
    )
    d = d.with_panel(
        ts(
            "Mean latency by stage",
            "s",
            q(
                f"{per_job_max('model_inference_duration_seconds_sum', 'stage')}"
                f" / {per_job_max('model_inference_duration_seconds_count', 'stage')}",
                "{{stage}}",
            ),
        )
    )
    d = d.with_row(dash.Row("Volume and errors"))
    d = d.with_panel(
        stacked(
            ts(
                "Prediction volume",
                "reqps",
                q(
                    per_job_max("model_predictions_total", "model_name, model_version"),
                    "{{model_name}} {{model_version}}",
                ),
            )
        )
    )
    d = d.with_panel(
        stacked(
            ts(
                "Predictions by class",
                "reqps",
                q(
                    per_job_max("model_predictions_total", "model_name, predicted_class"),
                    "{{model_name}} class {{predicted_class}}",
                ),
            )
        )
    )
    errors = per_job_max("model_prediction_errors_total", "model_name, model_version")
    served = per_job_max("model_predictions_total", "model_name, model_version")
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
        stacked(
            ts(
                "Errors by type",
                "reqps",
                q(
                    per_job_max("model_prediction_errors_total", "model_name, error_type"),
                    "{{model_name}} {{error_type}}",
                ),
            )
        )
    )
    d = d.with_panel(
        ts(
            "Label coverage",
            "percentunit",
            q(
                f"max by (model_name, model_version) (model_label_coverage_ratio{{{MV}}})",
                "{{model_name}} {{model_version}}",
            ),
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
        variable("feature", f"label_values(psi_score{{{MV}}}, feature)", "Feature").current(
            model.VariableOption(selected=True, text="All", value="$__all")
        )
    )
    d = d.with_row(dash.Row("Verdicts"))
    d = d.with_panel(
        st(
            "Data drift detected",
            "bool_yes_no",
            q(f"max by (model_name, model_version) (model_data_drift_detected{{{MV}}})"),
        )
    )
    d = d.with_panel(
        st(
            "Concept drift detected",
            "bool_yes_no",
            q(f"max by (model_name) (model_concept_drift_detected{{{M}}})"),
            "From the drift processor (error-rate ADWIN, per version) and the metrics "
            "processor (accuracy drop, per model); 1 when either fires.",
        )
    )
    d = d.with_panel(
        st(
            "Drifted columns",
            "percentunit",
            q(f"max by (model_name, model_version) (model_drifted_columns_ratio{{{MV}}})"),
        )
    )
    d = d.with_panel(
        st(
            "Drift signals (1h)",
            "short",
            q(f"sum by (model_name) (increase(model_drift_signals_total{{{M}}}[1h]))"),
        )
    )
    d = d.with_panel(
        ts(
            "Data and concept drift",
            "short",
            q(
                f"max by (model_name, model_version) (model_data_drift_detected{{{MV}}})",
                "data {{model_name}} {{model_version}}",
            ),
            q(
                f"max by (model_name) (model_concept_drift_detected{{{M}}})",
                "concept {{model_name}}",
            ),
        )
        .min(0)
        .max(1)
    )
    d = d.with_panel(
        ts(
            "Drifted columns ratio",
            "percentunit",
            q(
                f"max by (model_name, model_version) (model_drifted_columns_ratio{{{MV}}})",
                "{{model_name}} {{model_version}}",
            ),
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
            q(f"max by ({by_feature}) (psi_score{{{mvf}}})", "{{feature}} {{model_version}}"),
            desc="Population stability index; 0.1 moderate, 0.25 significant shift.",
        )
    )
    d = d.with_panel(
        ts(
            "KS statistic by feature",
            "short",
            q(
                f"max by ({by_feature}) (ks_statistic{{{mvf}}})",
                "{{feature}} {{model_version}}",
            ),
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Features now")
        .datasource(DS)
        .height(8)
        .span(24)
        .with_target(
            q(f"max by ({by_feature}) (psi_score{{{mvf}}})").instant().format(PromQueryFormat.TABLE)
        )
        .with_target(
            q(f"max by ({by_feature}) (ks_statistic{{{mvf}}})")
            .instant()
            .format(PromQueryFormat.TABLE)
        )
        .with_target(
            q(f"max by ({by_feature}) (model_feature_drift_severity{{{mvf}}})")
            .instant()
            .format(PromQueryFormat.TABLE)
        )
    )
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
            q(f"sum(modelguard_controller_leader{{{J}}})"),
            "Replicas holding the controller lease; anything but 1 needs attention.",
        )
    )
    d = d.with_panel(
        st(
            "Open incidents",
            "short",
            q(f"sum(modelguard_controller_open_incidents{{{M}}})"),
        )
    )
    d = d.with_panel(
        st(
            "Rollbacks (24h)",
            "short",
            q(
                "sum(increase(modelguard_controller_decisions_total"
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
                f"(rate(modelguard_controller_apply_seconds_bucket{{{J}}}[$__rate_interval])))"
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
                q(
                    f"max by (model_name, model_version) (modelguard_routing_weight{{{MV}}})",
                    "{{model_name}} {{model_version}}",
                ),
                desc="Weights in the routing table as last read by the controller.",
            )
        )
    )
    d = d.with_panel(
        ts(
            "Verdicts",
            "short",
            q(
                "max by (model_name, model_version, status) "
                f"(modelguard_controller_verdict{{{MV}}}) == 1",
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
                    "sum by (model_name, action) (increase(modelguard_controller_decisions_total"
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
                "sum by (model_name) "
                f"(rate(modelguard_controller_cas_conflicts_total{{{M}}}[$__rate_interval]))",
                "CAS conflicts {{model_name}}",
            ),
            q(
                "sum by (operation) "
                f"(rate(modelguard_routing_redis_errors_total{{{J}}}[$__rate_interval]))",
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
                "sum by (service, outcome) "
                f"(rate(modelguard_events_consumed_total{{{J}}}[$__rate_interval]))",
                "{{service}} {{outcome}}",
            ),
        )
    )
    d = d.with_panel(
        ts(
            "Dead letters",
            "ops",
            q(
                "sum by (service, error_kind) "
                f"(rate(modelguard_dead_letters_total{{{J}}}[$__rate_interval]))",
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
