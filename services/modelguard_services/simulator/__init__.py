"""Traffic simulator: runs a scenario, routes through Redis, publishes via the SDK.

In-process (e.g. from an end-to-end test)::

    from modelguard_services.simulator import SimulatorService, load_scenario

    scenario = load_scenario("deploy/scenarios/fraud-canary.yaml")
    # or build one in code: Scenario.model_validate({...}) / scenario.model_copy(update=...)
    with SimulatorService(settings, scenario, speed=None) as sim:  # None: no pacing
        report = sim.run(seconds=60)                       # simulated seconds
        ...                                                # e.g. change routing
        report = sim.run(seconds=60)                       # continues the same run
    report.stats.per_version                               # what was sent (cumulative)

Command line::

    python -m modelguard_services.simulator --scenario deploy/scenarios/fraud-canary.yaml \
        [--seconds 60] [--speed 10] [--rate 200] [--no-routing] [--reset-routing]
"""

from modelguard_services.simulator.app import SimulationReport, SimulatorService, load_scenario

__all__ = ["SimulationReport", "SimulatorService", "load_scenario"]
