"""Traffic simulation: scenario files (pydantic) and the pure, seeded engine.

>>> from modelguard.core.simulation import Scenario, SimulationEngine, parse_scenario

In-process use (e.g. an end-to-end test)::

    scenario = parse_scenario(Path("deploy/scenarios/fraud-canary.yaml").read_text())
    engine = SimulationEngine(scenario, start_time=datetime(2026, 1, 1, tzinfo=UTC))
    for events in engine.ticks(60):          # one list per simulated tick
        ...

The service ``modelguard_services.simulator`` runs the same engine, routes through
Redis and publishes through the SDK.
"""

from modelguard.core.simulation.engine import Assign, SimulationEngine, SimulationStats, draw
from modelguard.core.simulation.scenario import (
    AccuracyDrop,
    ConceptDrift,
    DataDrift,
    ErrorBurst,
    ExposureLoss,
    LabelSpec,
    LatencySpike,
    ModelSpec,
    Scenario,
    ScenarioError,
    VersionSpec,
    parse_scenario,
)

__all__ = [
    "AccuracyDrop",
    "Assign",
    "ConceptDrift",
    "DataDrift",
    "ErrorBurst",
    "ExposureLoss",
    "LabelSpec",
    "LatencySpike",
    "ModelSpec",
    "Scenario",
    "ScenarioError",
    "SimulationEngine",
    "SimulationStats",
    "VersionSpec",
    "draw",
    "parse_scenario",
]
