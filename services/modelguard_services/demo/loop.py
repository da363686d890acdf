"""The closed loop on real servers: simulator -> Kafka -> metrics, drift -> controller ->
Redis routing table (read back by the simulator's routing client) and Prometheus ->
Alertmanager. Used by the demo (``python -m modelguard_services.demo``) and by the
end-to-end tests, which check its outcome independently in Redis, Kafka and Prometheus.

The services run as subprocesses (``python -m modelguard_services.<name>``), as in
production; the simulator runs in this process in real time (speed 1), so simulated
incident times and the services' wall clocks agree.

The parts live in their own modules: :mod:`.results` (what to run, what was seen),
:mod:`.observability` (Prometheus rules, Alertmanager, the webhook), :mod:`.tail` (the
output topics), :mod:`.timeline` (milestones and their lines) and :mod:`.processes`
(service subprocesses); this module starts, watches and stops the loop.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.kafka import delete_topics, ensure_topics
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.core.simulation import Scenario
from modelguard.core.simulation.scenario import AccuracyDrop, DataDrift
from modelguard.errors import ConfigError
from modelguard.routing import RoutingTableStore
from modelguard_devstack import Endpoints
from modelguard_services.demo.observability import (
    WebhookReceiver,
    active_alerts,
    ensure_rules_loaded,
    notified_names,
)
from modelguard_services.demo.processes import ServiceError, ServiceProcess
from modelguard_services.demo.results import DRIFT_ALERT, REPO, LoopConfig, LoopResult
from modelguard_services.demo.tail import Tailed, TopicTail
from modelguard_services.demo.timeline import Timeline, weights
from modelguard_services.metrics.app import changelog_topic
from modelguard_services.simulator import SimulatorService, load_scenario

#: How long the end of the demo waits for Alertmanager to notify the webhook of the drift
#: alert it has just seen firing (the devstack's group_wait 1 s, group_interval 5 s).
WEBHOOK_WAIT_SECONDS = 10.0

__all__ = [
    "DRIFT_ALERT",
    "REDIS_ROLE",
    "REPO",
    "ClosedLoop",
    "LoopConfig",
    "LoopResult",
    "Tailed",
    "TopicTail",
    "WebhookReceiver",
    "active_alerts",
    "ensure_rules_loaded",
]

log = structlog.get_logger("modelguard.demo")

#: The Redis user each service runs as (ADR 0012); the metrics service needs no Redis
#: and gets the read-only one.
REDIS_ROLE: dict[str, str] = {"controller": "controller", "drift": "drift", "metrics": "router"}


class ClosedLoop:
    """Runs the loop once on ``endpoints``; see the module docstring.

    ``say(t, message)`` receives timeline lines (``t``: seconds since traffic started,
    None before it). Everything started is stopped by :meth:`run` before it returns.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        config: LoopConfig | None = None,
        *,
        say: Callable[[float | None, str], None] | None = None,
        prefix: str | None = None,
        keep_data: bool = False,
    ) -> None:
        self.ep = endpoints
        self.cfg = config or LoopConfig()
        self._say = say or (lambda _t, _m: None)
        self.prefix = prefix or f"demo-{utc_now():%H%M%S}-{uuid.uuid4().hex[:4]}"
        self.keep_data = keep_data
        #: The demo itself plays the operator (seeds the table, runs the simulator).
        self.settings = CommonSettings(
            kafka_bootstrap_servers=endpoints.kafka_bootstrap,
            topic_prefix=self.prefix,
            redis_prefix=self.prefix,
            **endpoints.redis_settings("operator"),
        )
        self.scenario: Scenario = load_scenario(self.cfg.scenario)
        drops = [i for i in self.scenario.incidents if isinstance(i, AccuracyDrop)]
        drifts = [i for i in self.scenario.incidents if isinstance(i, DataDrift)]
        if not drops or not drifts:
            raise ConfigError(
                f"{self.cfg.scenario}: the loop needs an accuracy_drop and a data_drift incident"
            )
        self.drop, self.drift = drops[0], drifts[0]
        spec = self.scenario.model(self.drop.model)
        self.champion = max(spec.weights, key=lambda v: spec.weights[v])
        #: A challenger window below this accuracy shows the incident.
        bad_accuracy = (spec.versions[self.drop.version].accuracy + self.drop.accuracy) / 2
        self._timeline = Timeline(self._say, bad_accuracy)
        self.services: list[ServiceProcess] = []
        self.metrics_urls: dict[str, str] = {}
        self._target_file = endpoints.prometheus_targets / f"{self.prefix}.json"

    # -- start-up ------------------------------------------------------------------
    def _env(self, name: str) -> dict[str, str]:
        return {
            "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS": self.ep.kafka_bootstrap,
            **self.ep.redis_env(REDIS_ROLE.get(name, "router")),
            "MODELGUARD_TOPIC_PREFIX": self.prefix,
            "MODELGUARD_REDIS_PREFIX": self.prefix,
            "MODELGUARD_METRICS_PORT": "0",
            "MODELGUARD_LOG_LEVEL": "INFO",
            "MODELGUARD_METRICS_WINDOW_LENGTHS_S": json.dumps([self.cfg.window_seconds]),
            "MODELGUARD_METRICS_ALLOWED_LATENESS_S": "1",
            "MODELGUARD_METRICS_GROUP_ID": f"{self.prefix}-metrics",
            "MODELGUARD_POLICIES": str(self.cfg.policies),
        }

    def _start_services(self) -> None:
        n = str(self.cfg.drift_window_events)
        args = {
            "metrics": [],
            "drift": ["--window-events", n, "--warmup-events", n],
            "controller": ["--policies", str(self.cfg.policies)],
        }
        logs = self.cfg.run_dir / self.prefix
        for name, argv in args.items():
            self.services.append(
                ServiceProcess(name, argv, self._env(name), logs / f"{name}.log", REPO)
            )
        for svc in self.services:
            self.metrics_urls[svc.name] = svc.metrics_url(self.cfg.start_timeout)

    def _register_targets(self, urls: dict[str, str]) -> None:
        groups = [
            {
                "targets": [urllib.parse.urlsplit(url).netloc],
                "labels": {"job_id": self.prefix, "service": name},
            }
            for name, url in urls.items()
        ]
        self._target_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._target_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self._target_file)

    # -- run -----------------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        """Where the services' JSON logs go."""
        return self.cfg.run_dir / self.prefix

    def _result(self, start: datetime) -> LoopResult:
        return LoopResult(
            prefix=self.prefix,
            model=self.drop.model,
            champion=self.champion,
            challenger=self.drop.version,
            drift_feature=self.drift.feature,
            start_time=start,
            degrade_at=start + timedelta(seconds=self.drop.at),
            drift_at=start + timedelta(seconds=self.drift.at),
        )

    def run(self) -> LoopResult:
        """Start everything, drive the scenario until the loop closes or the deadline
        passes, stop everything; never raises for a failure of the loop itself (see
        :attr:`LoopResult.error` and :attr:`LoopResult.missing`)."""
        result = self._result(utc_now())
        webhook = None
        if self.cfg.webhook_port is not None:
            with contextlib.suppress(OSError):  # in use (another demo): the API suffices
                webhook = WebhookReceiver(self.cfg.webhook_port)
        sim_registry = CollectorRegistry()
        sim_metrics = MetricsServer(sim_registry)
        stop = threading.Event()
        sim_thread: threading.Thread | None = None
        sim: SimulatorService | None = None
        tail: TopicTail | None = None
        try:
            topics = self.settings.topics
            ensure_topics(self.ep.kafka_bootstrap, topics.all(), partitions=3)
            ensure_rules_loaded(self.ep.prometheus_url, DRIFT_ALERT)
            self._start_services()
            urls = {**self.metrics_urls, "simulator": sim_metrics.url}
            self._register_targets(urls)
            self._say(None, "services up (python -m modelguard_services.<name>), /metrics at:")
            for name, url in urls.items():
                self._say(None, f"  {name:<11} {url}")
            selector = urllib.parse.quote(f'{{job_id="{self.prefix}"}}')
            self._say(None, f"Prometheus   {self.ep.prometheus_url}/graph?g0.expr={selector}")
            self._say(None, f"Alertmanager {self.ep.alertmanager_url}/#/alerts")
            tail = TopicTail(
                self.settings.kafka_connection(),
                {
                    topics.routing_decisions: RoutingDecision,
                    topics.drift_signals: DriftSignal,
                    topics.metric_windows: MetricWindowClosed,
                },
            )
            table = RoutingTableStore(
                make_redis(self.settings.redis_connection()), self.settings.redis_keys
            )
            spec = self.scenario.model(result.model)
            initial = table.write(
                result.model,
                spec.weights,
                expected_revision=0,
                actor="demo",
                reason=f"scenario {self.scenario.name}: {result.challenger} enters as challenger",
                experiment_id=spec.experiment_id,
            )
            # Simulated time = wall time from here on (speed 1): the services' clocks and
            # the events' times agree, so every timeline entry is on one axis.
            result = self._result(utc_now())
            result.metrics_urls = urls
            sim = SimulatorService(
                self.settings,
                self.scenario,
                registry=sim_registry,
                speed=1.0,
                start_time=result.start_time,
                id_prefix=self.prefix,
            )
            self._say(
                0.0,
                f"traffic starts: {result.model} {weights(initial)} "
                f"(routing table rev {initial.revision}), {self.scenario.rate_per_second:g}/s",
            )
            runner, outcome = sim, result

            def simulate() -> None:
                try:
                    runner.run(None, stop)
                except Exception as exc:  # reported by the watch loop
                    outcome.error = f"simulator failed: {exc!r}"
                    log.exception("simulator_failed")

            sim_thread = threading.Thread(target=simulate, name="simulator", daemon=True)
            sim_thread.start()
            self._watch(result, sim, tail, table, webhook)
        except (ServiceError, RuntimeError, OSError, KafkaException) as exc:
            result.error = str(exc)
        finally:
            stop.set()
            if sim_thread is not None:
                sim_thread.join(timeout=40)
            if sim is not None:
                sim.close()
            if tail is not None:
                tail.close()
            for svc in reversed(self.services):
                code = svc.stop()
                if code not in (0, None) and result.error is None:
                    result.error = f"service {svc.name} exited with code {code}:\n{svc.tail()}"
            sim_metrics.close()
            if webhook is not None:
                webhook.close()
                result.webhook_alerts = webhook.ours(self.prefix)
            self._target_file.unlink(missing_ok=True)
            if not self.keep_data:
                self._clean_up()
        return result

    def _watch(
        self,
        r: LoopResult,
        sim: SimulatorService,
        tail: TopicTail,
        table: RoutingTableStore,
        webhook: WebhookReceiver | None,
    ) -> None:
        deadline = time.monotonic() + self.cfg.deadline_seconds
        injected: set[str] = set()
        next_alert_check = 0.0
        while time.monotonic() < deadline:
            if r.error is not None:
                return
            for svc in self.services:
                svc.check_alive()
            elapsed = sim.engine.elapsed
            if elapsed >= self.drop.at and "drop" not in injected:
                injected.add("drop")
                self._say(
                    self.drop.at,
                    f"INCIDENT injected: {r.model}/{r.challenger} accuracy -> "
                    f"{self.drop.accuracy:g}",
                )
            if elapsed >= self.drift.at and "drift" not in injected:
                injected.add("drift")
                self._say(
                    self.drift.at,
                    f"INCIDENT injected: data drift on {r.model}.{r.drift_feature} "
                    f"(shift {self.drift.shift:+g}, scale x{self.drift.scale:g})",
                )
            for event, at in tail.poll(0.2):
                self._timeline.on_event(r, event, at, table)
            if (
                r.drift_signal is not None
                and r.alert is None
                and time.monotonic() >= next_alert_check
            ):
                next_alert_check = time.monotonic() + 1.0
                with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                    found = active_alerts(
                        self.ep.alertmanager_url,
                        alertname=DRIFT_ALERT,
                        job_id=self.prefix,
                        model_version=r.champion,
                    )
                    if found:
                        r.alert, r.alert_seen_at = found[0], utc_now()
                        since = datetime.fromisoformat(found[0]["startsAt"].replace("Z", "+00:00"))
                        self._say(
                            r.t(r.alert_seen_at),
                            f"ALERT in Alertmanager: {DRIFT_ALERT} "
                            f"{found[0]['labels'].get('model_name')}/{r.champion} "
                            f"(firing since t={r.t(since):.1f}s, severity "
                            f"{found[0]['labels'].get('severity')})",
                        )
            if r.closed:
                if webhook is not None:  # give Alertmanager a moment to notify
                    names = notified_names(webhook, self.prefix, DRIFT_ALERT, WEBHOOK_WAIT_SECONDS)
                    if names:
                        self._say(r.t(utc_now()), f"webhook (PagerDuty stand-in) notified: {names}")
                r.table = table.read(r.model)
                return
        r.table = table.read(r.model)

    def _clean_up(self) -> None:
        with contextlib.suppress(Exception):
            delete_topics(self.ep.kafka_bootstrap, self.settings.topics.all())
            delete_topics(self.ep.kafka_bootstrap, [changelog_topic(self.settings)])
        with contextlib.suppress(Exception):
            admin = CommonSettings(**self.ep.redis_settings("admin"))
            client = make_redis(admin.redis_connection())
            for key in client.scan_iter(f"{self.prefix}:*"):
                client.delete(key)
