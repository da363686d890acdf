"""The README's main job: ``python -m modelguard_services.demo`` runs the loop, prints
the timeline, exits 0, and leaves servers that were running before it running; with a
deadline too short for the loop it exits 1 and says what is missing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from modelguard.core.control import load_policies
from modelguard.core.simulation.scenario import AccuracyDrop, DataDrift
from modelguard_devstack import Stack
from modelguard_services.demo.loop import LoopConfig
from modelguard_services.metrics.settings import MetricsSettings
from modelguard_services.simulator import load_scenario
from tests.support.paths import ROOT
from tests.support.servers import Servers

pytestmark = pytest.mark.e2e


def _ready() -> set[str]:
    return {name for name, st in Stack().status().items() if st["ready"]}


def _demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelguard_services.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _t(stdout: str, marker: str) -> float:
    """The ``t=`` of the first timeline line containing ``marker``."""
    for line in stdout.splitlines():
        if marker in line:
            found = re.search(r"t=\s*([0-9.]+)s", line)
            assert found, line
            return float(found.group(1))
    raise AssertionError(f"no line with {marker!r} in:\n{stdout}")


def test_policies_match_what_the_processors_emit() -> None:
    """The policies select windows the metrics processor really emits: the production
    policy one of its default lengths, the demo policy the demo's length."""
    default_lengths = MetricsSettings().metrics_window_lengths_s
    for name, policy in load_policies(ROOT / "deploy" / "policies").items():
        assert policy.window in {f"tumbling:{s:g}" for s in default_lengths}, name
    demo = load_policies(LoopConfig.policies)
    assert {p.window for p in demo.values()} == {f"tumbling:{LoopConfig.window_seconds:g}"}
    scenario = load_scenario(LoopConfig.scenario)
    kinds = {type(i) for i in scenario.incidents}
    assert {AccuracyDrop, DataDrift} <= kinds
    assert {m.name for m in scenario.models} <= set(demo)


def test_demo_exits_zero_with_the_timeline(servers: Servers) -> None:
    before = _ready()
    out = _demo("--deadline", "120", timeout=280)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for line in (
        "/metrics",
        "Prometheus   http://",
        "traffic starts: fraud v1 90% / v2 10%",
        "routing: ramp -> v1 75% / v2 25%",
        "INCIDENT injected: fraud/v2 accuracy",
        "DETECTED by the controller: v2 breaches: ",
        "ROUTING CHANGED: fraud v1 100% / v2 0%",
        "INCIDENT injected: data drift on fraud.amount",
        "DETECTED by the drift processor: fraud/v1 amount",
        "ALERT in Alertmanager: ModelDataDriftDetected fraud/v1",
        "routing table now: fraud rev",
        "degradation -> routing change:",
        "loop closed",
    ):
        assert line in text, f"missing {line!r} in:\n{text}"
    injected = _t(text, "INCIDENT injected: fraud/v2")
    detected = _t(text, "DETECTED by the controller")
    changed = _t(text, "ROUTING CHANGED")
    assert injected < detected <= changed
    # whichever guardrail sees the degraded challenger first: the drift processor's
    # concept-drift detector on its error stream, or two breaching accuracy windows
    assert re.search(r"v2 breaches: (accuracy_drop|concept_drift)", text), text
    drift = _t(text, "INCIDENT injected: data drift")
    assert drift < _t(text, "DETECTED by the drift processor") < _t(text, "ALERT in Alertmanager")
    # Servers that were running before the demo still are.
    assert before <= _ready(), (before, _ready())


def test_demo_fails_clearly_when_the_loop_does_not_close(servers: Servers) -> None:
    before = _ready()
    out = _demo("--deadline", "3", timeout=120)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the loop did not close within 3s" in out.stderr
    assert "no rollback of fraud/v2" in out.stderr
    assert "loop closed" not in out.stdout
    assert before <= _ready(), (before, _ready())
