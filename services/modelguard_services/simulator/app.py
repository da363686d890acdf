"""The simulator loop: engine ticks -> routing client -> SDK, paced against a clock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.kafka import ensure_topics
from modelguard.adapters.prometheus import counter, gauge
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.base import Event
from modelguard.contracts.telemetry import (
    MODELGUARD_SIMULATOR_EVENTS,
    MODELGUARD_SIMULATOR_SIMULATED_SECONDS,
)
from modelguard.core.simulation import Scenario, ScenarioError, SimulationEngine, SimulationStats
from modelguard.core.simulation import parse_scenario as _parse
from modelguard.errors import ConfigError
from modelguard.routing import RoutingClient, RoutingTableStore
from modelguard.sdk import EventSDK

log = structlog.get_logger("modelguard.simulator")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (errors name the file and the field)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario file: {exc.strerror}") from None
    return _parse(text, str(p))


@dataclass(frozen=True)
class SimulationReport:
    """What a run did: simulated seconds, events sent, and the engine's counts."""

    scenario: str
    simulated_seconds: float
    wall_seconds: float
    events_sent: int
    undelivered: int
    stats: SimulationStats
    start_time: datetime
    id_prefix: str


class SimulatorService:
    """Runs ``scenario``; see the package docstring.

    ``routing``: route through the Redis routing client (tables missing in Redis are
    created from the scenario's weights; ``reset_routing`` overwrites existing ones);
    without it the scenario's weights are used in-process. ``speed``: simulated seconds
    per wall second (None: as fast as possible). ``sdk``: an SDK to publish with (one is
    made from ``settings`` otherwise, and closed at the end of :meth:`run`).
    """

    def __init__(
        self,
        settings: CommonSettings,
        scenario: Scenario,
        *,
        registry: CollectorRegistry | None = None,
        sdk: EventSDK | None = None,
        routing: bool = True,
        reset_routing: bool = False,
        speed: float | None = 1.0,
        clock: Callable[[], datetime] = utc_now,
        start_time: datetime | None = None,
        id_prefix: str | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ConfigError(f"speed must be > 0 (or None for as fast as possible), got {speed}")
        self.settings = settings
        self.scenario = scenario
        self.registry = registry if registry is not None else CollectorRegistry()
        self._own_sdk = sdk is None
        self.sdk = sdk or EventSDK.from_settings(settings, self.registry)
        self._routing = routing
        self._reset_routing = reset_routing
        self._speed = speed
        self._clock = clock
        self.engine = SimulationEngine(
            scenario,
            start_time=start_time or scenario.start_time or clock(),
            id_prefix=id_prefix or f"{scenario.name}-{uuid.uuid4().hex[:8]}",
        )
        self._sent = counter(MODELGUARD_SIMULATOR_EVENTS, self.registry)
        self._sim_time = gauge(MODELGUARD_SIMULATOR_SIMULATED_SECONDS, self.registry)
        self.router: RoutingClient | None = None

    def _start_routing(self) -> RoutingClient:
        client = make_redis(self.settings.redis_connection())
        store = RoutingTableStore(client, self.settings.redis_keys, clock=self._clock)
        for model in self.scenario.models:
            current = store.read(model.name)
            if current is None or self._reset_routing:
                table = store.write(
                    model.name,
                    model.weights,
                    expected_revision=current.revision if current else 0,
                    actor="simulator",
                    reason=f"scenario {self.scenario.name}",
                    experiment_id=model.experiment_id,
                    keep_experiment=False,
                )
                log.info("simulator_routing_initialised", model=model.name, revision=table.revision)
        router = RoutingClient(
            client,
            self.settings.redis_keys,
            models=[m.name for m in self.scenario.models],
            registry=self.registry,
        )
        return router.start()

    def run(
        self, seconds: float | None = None, stop: threading.Event | None = None
    ) -> SimulationReport:
        """Run ``seconds`` simulated seconds (default: to the scenario's end) or until
        ``stop`` is set; flushes the SDK before returning. May be called again to
        continue the same run (e.g. after changing routing); :meth:`close` at the end."""
        stop = stop or threading.Event()
        t = self.settings.topics
        ensure_topics(
            self.settings.kafka_connection(),
            [t.predictions, t.labels, t.exposures, t.outcomes],
        )
        wall0 = time.monotonic()
        sim0 = self.engine.elapsed
        sent = 0
        assign = None
        if self._routing:
            if self.router is None:
                self.router = self._start_routing()
            router = self.router

            def assign(model: str, unit_id: str, event_time: datetime) -> str:
                return router.version_for(model, unit_id)

        log.info(
            "simulator_started",
            scenario=self.scenario.name,
            seconds=seconds,
            speed=self._speed,
            routing=self._routing,
        )
        try:
            for events in self.engine.ticks(seconds, assign):
                self._publish(events)
                sent += len(events)
                self._sim_time.set(self.engine.elapsed)
                if stop.is_set():
                    break
                if self._speed is not None:
                    due = wall0 + (self.engine.elapsed - sim0) / self._speed
                    if stop.wait(max(due - time.monotonic(), 0.0)):
                        break
        finally:
            undelivered = self.sdk.flush(30)
        report = SimulationReport(
            scenario=self.scenario.name,
            simulated_seconds=self.engine.elapsed - sim0,
            wall_seconds=time.monotonic() - wall0,
            events_sent=sent,
            undelivered=undelivered,
            stats=self.engine.stats,
            start_time=self.engine.start_time,
            id_prefix=self.engine.id_prefix,
        )
        log.info(
            "simulator_finished",
            scenario=report.scenario,
            simulated_seconds=report.simulated_seconds,
            events=sent,
            undelivered=undelivered,
        )
        return report

    def close(self) -> None:
        """Stop the routing client and close the SDK (if this service made it)."""
        if self.router is not None:
            self.router.close()
            self.router = None
        if self._own_sdk:
            self.sdk.close(30)

    def __enter__(self) -> SimulatorService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self.sdk.emit_event(event)
            self._sent.labels(type(event).schema_name).inc()
