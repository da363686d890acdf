"""The demo's parts without servers: the timeline's milestones and lines, typed errors of
the observability helpers and service processes. The whole loop runs on real servers in
tests/e2e/test_loop.py and tests/e2e/test_demo.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.routing import RoutingTable
from modelguard.core.routing.assignment import assign_slots
from modelguard.errors import ConfigError, DependencyError
from modelguard_services.demo import LoopResult
from modelguard_services.demo.observability import ensure_rules_loaded
from modelguard_services.demo.processes import ServiceError
from modelguard_services.demo.results import DRIFT_ALERT, REPO
from modelguard_services.demo.timeline import Timeline, pct, short
from modelguard_services.simulator import SimulatorService, load_scenario

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def result() -> LoopResult:
    return LoopResult(
        prefix="demo-x",
        model="fraud",
        champion="v1",
        challenger="v2",
        drift_feature="amount",
        start_time=T0,
        degrade_at=T0 + timedelta(seconds=20),
        drift_at=T0 + timedelta(seconds=30),
    )


def decision(action: str, **kw: Any) -> RoutingDecision:
    fields: dict[str, Any] = {
        "decision_id": f"dec-{action}",
        "model": "fraud",
        "action": action,
        "reason": "x" * 200,
        "old_weights": {"v1": 0.8, "v2": 0.2},
        "new_weights": {"v1": 1.0, "v2": 0.0},
        "revision_before": 3,
        "revision_after": 4,
        "decided_at": T0 + timedelta(seconds=25),
    }
    return RoutingDecision(**(fields | kw))


class History:
    """The routing store's history, as the timeline reads it."""

    def __init__(self, tables: list[RoutingTable]) -> None:
        self.tables = tables

    def history(self, model: str) -> list[RoutingTable]:
        return self.tables


def test_the_timeline_records_the_rollback_with_its_routing_change() -> None:
    lines: list[tuple[float | None, str]] = []
    timeline = Timeline(lambda t, m: lines.append((t, m)), bad_accuracy=0.6)
    r = result()
    table = RoutingTable(
        model="fraud",
        weights={"v1": 1.0, "v2": 0.0},
        slots=assign_slots({}, ["v1", "v2"]),
        revision=4,
        updated_at=T0 + timedelta(seconds=26),
        actor="controller",
        decision_id="dec-rollback",
    )
    rollback = decision("rollback")
    timeline.on_event(r, rollback, T0, History([table]))  # type: ignore[arg-type]
    assert r.rollback == rollback and r.rollback_table == table
    assert r.degradation_to_routing_seconds == 6.0
    assert [t for t, _ in lines] == [25.0, 26.0]
    assert lines[0][1].startswith("DETECTED by the controller: ") and lines[0][1].endswith("...")
    assert "ROUTING CHANGED: fraud v1 100% / v2 0% (rev 4; 6.0s after" in lines[1][1]
    ramp = decision("ramp", new_weights={"v1": 0.5, "v2": 0.5})
    timeline.on_event(r, ramp, T0, History([]))  # type: ignore[arg-type]
    assert lines[-1] == (25.0, "routing: ramp -> v1 50% / v2 50% (rev 4)")
    assert r.decisions == [rollback, ramp]
    assert r.missing == [
        "no drift signal for fraud/v1.amount",
        f"no {DRIFT_ALERT} alert in Alertmanager",
    ]


def test_formatting_helpers() -> None:
    assert pct({"b": 0.25, "a": 0.75}) == "a 75% / b 25%"
    assert short("abc", limit=10) == "abc" and short("a" * 20, limit=10) == "aaaaaaa..."


@pytest.fixture
def prometheus_without_rules() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"data": {"groups": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # /-/reload
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_rule_prometheus_does_not_load_is_a_dependency_error(
    prometheus_without_rules: str,
) -> None:
    with pytest.raises(DependencyError, match="does not load the rule 'X'"):
        ensure_rules_loaded(prometheus_without_rules, "X", timeout=0.3)


def test_typed_errors_of_processes_and_simulator() -> None:
    assert issubclass(ServiceError, DependencyError)
    scenario = load_scenario(Path(REPO / "deploy" / "scenarios" / "demo-canary.yaml"))
    with pytest.raises(ConfigError, match="speed must be > 0"):
        SimulatorService(CommonSettings(), scenario, speed=0)


def test_the_webhook_line_waits_for_the_drift_alert() -> None:
    """README: ``ModelDataDriftDetected`` fires in Alertmanager, "whose local webhook
    receives it". Before: the demo printed the webhook's alerts as soon as any had come
    (``['ModelServingVersionBreach', 'ModelVersionRolledBack']`` in a real run), without
    the drift alert that arrives a group interval later."""
    from modelguard_services.demo.observability import notified_names
    from modelguard_services.demo.results import DRIFT_ALERT

    now = [0.0]

    class Hook:
        def ours(self, job_id: str) -> list[dict[str, object]]:
            names = ["ModelServingVersionBreach", "ModelVersionRolledBack"]
            if now[0] >= 5.0:  # Alertmanager's next group interval
                names.append(DRIFT_ALERT)
            return [{"labels": {"alertname": n, "job_id": job_id}} for n in names]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    names = notified_names(Hook(), "run", DRIFT_ALERT, 10.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert DRIFT_ALERT in names and 5.0 <= now[0] < 5.5
    now[0] = 0.0
    late = notified_names(Hook(), "run", "NeverFires", 3.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert late == ["ModelServingVersionBreach", "ModelVersionRolledBack"] and now[0] >= 3.0
