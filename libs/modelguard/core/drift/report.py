"""Readable drift reports (plain text and self-contained HTML) from a window report.

Features are listed by severity, worst first, each with its statistics and the
recommended action; then prediction drift, data quality, sequential alarms and concept
drift. The same renderer serves the drift service and ``modelguard drift``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from modelguard.contracts.common import Severity
from modelguard.contracts.drift import DriftSignal
from modelguard.core.drift import severity as sev
from modelguard.core.drift.evaluation import TestResult
from modelguard.core.drift.events import WindowReport


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def _sorted(rows: list[TestResult]) -> list[TestResult]:
    return sorted(
        rows,
        key=lambda r: (
            -int(r.severity),
            -int(r.drift_detected),
            r.p_adjusted if r.p_adjusted is not None else 1.0,
            r.feature or "",
        ),
    )


def overall_severity(report: WindowReport) -> Severity:
    worst = [r.severity for r in report.verdict.results]
    worst += [s.severity for s in (*report.sequential, *report.concept) if s.drift_detected]
    return max(worst, default=Severity.NONE)


def summary(report: WindowReport) -> dict[str, Any]:
    """The headline of a report as plain data (for logs and JSON output)."""
    v = report.verdict
    drifted = [r.feature for r in v.results if r.kind == "data" and r.drift_detected]
    return {
        "model": report.model,
        "version": report.version,
        "reference_id": report.reference_id,
        "window_index": report.window_index,
        "window_start": report.window_start.isoformat(),
        "window_end": report.window_end.isoformat(),
        "n_events": v.n_events,
        "dataset_drift": v.dataset_drift,
        "drifted_share": v.drifted_share,
        "drifted_features": drifted,
        "severity": overall_severity(report).name,
        "action": sev.ACTIONS[overall_severity(report)],
    }


def _row_cells(r: TestResult) -> list[str]:
    m = r.metrics
    return [
        r.severity.name,
        r.feature or "(dataset)",
        r.test,
        _fmt(r.statistic),
        _fmt(r.p_adjusted),
        _fmt(m.get("psi")),
        _fmt(m.get("jensen_shannon")),
        _fmt(m.get("wasserstein_sigma")),
        "DRIFT" if r.drift_detected else "ok",
        r.action + (f" ({r.detail})" if r.detail else ""),
    ]


HEADERS = [
    "severity",
    "feature",
    "test",
    "statistic",
    "p (BH)",
    "PSI",
    "JSD",
    "W1/sigma",
    "verdict",
    "recommended action",
]


def _signal_cells(s: DriftSignal) -> list[str]:
    return [
        Severity(s.severity).name,
        s.feature or "(model)",
        s.test,
        _fmt(s.statistic),
        _fmt(s.threshold),
        _fmt(s.effect_size),
        "DRIFT" if s.drift_detected else "ok",
    ]


SIGNAL_HEADERS = ["severity", "feature", "test", "statistic", "threshold", "effect", "verdict"]


def _sections(report: WindowReport) -> list[tuple[str, list[str], list[list[str]]]]:
    v = report.verdict
    out: list[tuple[str, list[str], list[list[str]]]] = [
        ("Features by severity", HEADERS, [_row_cells(r) for r in _sorted(v.by_kind("data"))]),
        ("Prediction drift", HEADERS, [_row_cells(r) for r in _sorted(v.by_kind("prediction"))]),
        ("Data quality", HEADERS, [_row_cells(r) for r in _sorted(v.by_kind("quality"))]),
    ]
    if report.sequential:
        out.append(
            (
                "Sequential alarms in this window",
                SIGNAL_HEADERS,
                [_signal_cells(s) for s in report.sequential],
            )
        )
    if report.concept:
        out.append(
            (
                "Concept drift (error stream, ADWIN)",
                SIGNAL_HEADERS,
                [_signal_cells(s) for s in report.concept],
            )
        )
    return out


def _headline(report: WindowReport) -> list[str]:
    s = summary(report)
    verdict = "YES" if s["dataset_drift"] else "no"
    return [
        f"Drift report: model {s['model']} version {s['version']}",
        f"reference {s['reference_id']}; window {s['window_index']} "
        f"{s['window_start']} .. {s['window_end']}; {s['n_events']} events",
        f"Dataset drift: {verdict} ({len(s['drifted_features'])} drifted features, "
        f"share {s['drifted_share']:.1%}, alert above "
        f"{report.verdict.results[-1].threshold or 0:.0%})",
        f"Overall severity: {s['severity']}. Recommended action: {s['action']}",
    ]


def render_text(report: WindowReport) -> str:
    lines = _headline(report)
    for title, headers, rows in _sections(report):
        lines += ["", f"## {title}"]
        if not rows:
            lines.append("(none)")
            continue
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


_COLOURS = {
    "NONE": "#e8f5e9",
    "LOW": "#fffde7",
    "MEDIUM": "#fff3e0",
    "HIGH": "#ffe0b2",
    "CRITICAL": "#ffcdd2",
}


def render_html(report: WindowReport) -> str:
    e = html.escape
    head = _headline(report)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(head[0])}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>",
        f"<h1>{e(head[0])}</h1>",
        *(f"<p>{e(line)}</p>" for line in head[1:]),
    ]
    for title, headers, rows in _sections(report):
        parts.append(f"<h2>{e(title)}</h2>")
        if not rows:
            parts.append("<p>(none)</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            colour = _COLOURS.get(row[0], "#fff")
            parts.append(
                f"<tr style='background:{colour}'>"
                + "".join(f"<td>{e(c)}</td>" for c in row)
                + "</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_json(report: WindowReport) -> str:
    rows = [
        {
            "kind": r.kind,
            "feature": r.feature,
            "test": r.test,
            "statistic": r.statistic,
            "p_value": r.p_value,
            "p_adjusted": r.p_adjusted,
            "effect_size": r.effect_size,
            "drift_detected": r.drift_detected,
            "severity": r.severity.name,
            "metrics": dict(r.metrics),
            "action": r.action,
        }
        for r in report.verdict.results
    ]
    return json.dumps({**summary(report), "results": rows}, indent=2, allow_nan=False) + "\n"
