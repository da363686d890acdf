"""The closed loop on real servers: simulator -> Kafka -> metrics, drift -> controller ->
Redis routing table (read back by the simulator's routing client) and Prometheus ->
Alertmanager. Used by the demo (``python -m modelguard_services.demo``) and by the
end-to-end tests, which check its outcome independently in Redis, Kafka and Prometheus.

The services run as subprocesses (``python -m modelguard_services.<name>``), as in
production; the simulator runs in this process in real time (speed 1), so simulated
incident times and the services' wall clocks agree.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from modelguard.adapters.clock import utc_now
from modelguard.adapters.kafka import KafkaConnection, client_config, delete_topics, ensure_topics
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.redis_client import make_redis
from modelguard.adapters.settings import CommonSettings
from modelguard.contracts.codec import decode_event
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.routing import RoutingTable
from modelguard.core.simulation import Scenario
from modelguard.core.simulation.scenario import AccuracyDrop, DataDrift
from modelguard.routing import RoutingTableStore
from modelguard_devstack import Endpoints
from modelguard_services.demo.processes import ServiceError, ServiceProcess
from modelguard_services.simulator import SimulatorService, load_scenario

log = structlog.get_logger("modelguard.demo")

REPO = Path(__file__).resolve().parents[3]
#: The Redis user each service runs as (ADR 0012); the metrics service needs no Redis
#: and gets the read-only one.
REDIS_ROLE: dict[str, str] = {"controller": "controller", "drift": "drift", "metrics": "router"}
DRIFT_ALERT = "ModelDataDriftDetected"
Tailed = RoutingDecision | DriftSignal | MetricWindowClosed


@dataclass(frozen=True)
class LoopConfig:
    """What to run. The defaults are the README demo (about a minute)."""

    scenario: Path = REPO / "deploy" / "scenarios" / "demo-canary.yaml"
    policies: Path = REPO / "deploy" / "policies" / "demo" / "fraud.yaml"
    rules_dir: Path = REPO / "deploy" / "prometheus" / "rules"
    window_seconds: float = 4.0
    drift_window_events: int = 500
    #: Wall seconds from the start of traffic until the loop must have closed.
    deadline_seconds: float = 100.0
    #: Seconds to wait for each service to come up.
    start_timeout: float = 30.0
    run_dir: Path = REPO / ".run" / "demo"
    webhook_port: int | None = None


@dataclass
class LoopResult:
    """What the loop did; times are UTC wall clock (= simulated time: speed 1)."""

    prefix: str
    model: str
    champion: str
    challenger: str
    drift_feature: str
    start_time: datetime
    degrade_at: datetime
    drift_at: datetime
    decisions: list[RoutingDecision] = field(default_factory=list)
    bad_window: MetricWindowClosed | None = None
    bad_window_seen_at: datetime | None = None
    rollback: RoutingDecision | None = None
    rollback_table: RoutingTable | None = None
    drift_signal: DriftSignal | None = None
    drift_signal_seen_at: datetime | None = None
    champion_alert: RoutingDecision | None = None
    alert: dict[str, Any] | None = None
    alert_seen_at: datetime | None = None
    webhook_alerts: list[dict[str, Any]] = field(default_factory=list)
    table: RoutingTable | None = None
    metrics_urls: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def t(self, when: datetime | None) -> float | None:
        """Seconds since the start of traffic."""
        return None if when is None else (when - self.start_time).total_seconds()

    @property
    def missing(self) -> list[str]:
        out = []
        if self.rollback is None or self.rollback_table is None:
            out.append(f"no rollback of {self.model}/{self.challenger} in the routing table")
        if self.drift_signal is None:
            out.append(f"no drift signal for {self.model}/{self.champion}.{self.drift_feature}")
        if self.alert is None:
            out.append(f"no {DRIFT_ALERT} alert in Alertmanager")
        return out

    @property
    def closed(self) -> bool:
        return not self.missing and self.error is None

    @property
    def degradation_to_routing_seconds(self) -> float | None:
        if self.rollback_table is None:
            return None
        return (self.rollback_table.updated_at - self.degrade_at).total_seconds()


# --------------------------------------------------------------------------- helpers
def _get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def ensure_rules_loaded(prometheus_url: str, alert: str, timeout: float = 15.0) -> None:
    """Reload Prometheus when it started before ``alert``'s rule file was added."""

    def loaded() -> bool:
        groups = _get_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"]
        return any(r.get("name") == alert for g in groups for r in g["rules"])

    if loaded():
        return
    req = urllib.request.Request(f"{prometheus_url}/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if loaded():
            return
        time.sleep(0.3)
    raise RuntimeError(f"Prometheus at {prometheus_url} does not load the rule {alert!r}")


def active_alerts(alertmanager_url: str, **labels: str) -> list[dict[str, Any]]:
    """Active alerts in Alertmanager matching ``labels`` exactly."""
    query = urllib.parse.urlencode(
        [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        + [("filter", f'{k}="{v}"') for k, v in labels.items()]
    )
    alerts: list[dict[str, Any]] = _get_json(f"{alertmanager_url}/api/v2/alerts?{query}")
    return alerts


class WebhookReceiver:
    """The local stand-in for PagerDuty/Slack: Alertmanager's webhook on loopback."""

    def __init__(self, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                with contextlib.suppress(ValueError):
                    body = json.loads(self.rfile.read(min(length, 1 << 20)))
                    if isinstance(body, dict):
                        receiver.received.extend(body.get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def ours(self, job_id: str) -> list[dict[str, Any]]:
        """Notified alerts of this run's series (Alertmanager sends every alert here)."""
        return [
            a
            for a in list(self.received)
            if isinstance(a.get("labels"), dict) and a["labels"].get("job_id") == job_id
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TopicTail:
    """Reads the loop's output topics (decisions, drift signals, metric windows) from
    their beginning; yields each event with its Kafka timestamp."""

    def __init__(self, connection: KafkaConnection, topics: dict[str, type[Tailed]]) -> None:
        self._models = topics
        self._c = Consumer(
            client_config(
                connection,
                **{
                    "group.id": f"{min(topics)}-demo-tail-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                },
            )
        )
        meta = self._c.list_topics(timeout=10)
        self._c.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in topics
                for p in meta.topics[t].partitions
            ]
        )

    def poll(self, timeout: float) -> Iterator[tuple[Tailed, datetime]]:
        for msg in self._c.consume(500, timeout=timeout):
            topic = msg.topic()
            if msg.error() is not None or topic is None:
                continue
            _kind, ms = msg.timestamp()
            at = datetime.fromtimestamp(ms / 1000.0, UTC)
            yield decode_event(self._models[topic], msg.value() or b""), at

    def close(self) -> None:
        self._c.close()


# --------------------------------------------------------------------------- the loop
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
            raise ValueError(
                f"{self.cfg.scenario}: the loop needs an accuracy_drop and a data_drift incident"
            )
        self.drop, self.drift = drops[0], drifts[0]
        spec = self.scenario.model(self.drop.model)
        self.champion = max(spec.weights, key=lambda v: spec.weights[v])
        #: A challenger window below this accuracy shows the incident.
        self._bad_accuracy = (spec.versions[self.drop.version].accuracy + self.drop.accuracy) / 2
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
                f"traffic starts: {result.model} {_weights(initial)} "
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
                self._on_event(r, event, at, table)
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
                    end = time.monotonic() + 3.0
                    while not webhook.ours(self.prefix) and time.monotonic() < end:
                        time.sleep(0.2)
                    names = sorted(
                        {a["labels"].get("alertname", "?") for a in webhook.ours(self.prefix)}
                    )
                    if names:
                        self._say(r.t(utc_now()), f"webhook (PagerDuty stand-in) notified: {names}")
                r.table = table.read(r.model)
                return
        r.table = table.read(r.model)

    def _on_event(
        self, r: LoopResult, event: Tailed, at: datetime, table: RoutingTableStore
    ) -> None:
        if isinstance(event, MetricWindowClosed):
            accuracy = event.metrics.get("accuracy")
            if (
                r.bad_window is None
                and event.version == r.challenger
                and event.window_end > r.degrade_at
                and accuracy is not None
                and accuracy < self._bad_accuracy
            ):
                r.bad_window, r.bad_window_seen_at = event, at
                self._say(
                    r.t(at),
                    f"metrics processor: {event.model}/{event.version} window "
                    f"[{r.t(event.window_start):.0f}s, {r.t(event.window_end):.0f}s) closed "
                    f"with accuracy {accuracy:.2f} ({event.n_labelled} labelled, "
                    f"partition {','.join(map(str, event.partitions)) or 'all'})",
                )
            return
        if isinstance(event, DriftSignal):
            if (
                r.drift_signal is None
                and event.drift_detected
                and event.kind == "data"
                and event.feature == r.drift_feature
                and event.version == r.champion
                and event.window_end >= r.drift_at
            ):
                r.drift_signal, r.drift_signal_seen_at = event, at
                self._say(
                    r.t(at),
                    f"DETECTED by the drift processor: {event.model}/{event.version} "
                    f"{event.feature} {event.test}={event.statistic:.3g} "
                    f"severity {event.severity.name}",
                )
            return
        r.decisions.append(event)
        d = event
        if d.action == "rollback" and r.rollback is None:
            r.rollback = d
            r.rollback_table = next(
                (t for t in table.history(d.model) if t.decision_id == d.decision_id), None
            )
            self._say(r.t(d.decided_at), f"DETECTED by the controller: {_short(d.reason)}")
            if r.rollback_table is not None:
                changed = r.rollback_table.updated_at
                self._say(
                    r.t(changed),
                    f"ROUTING CHANGED: {d.model} {_weights(r.rollback_table)} "
                    f"(rev {r.rollback_table.revision}; "
                    f"{r.degradation_to_routing_seconds:.1f}s after the incident)",
                )
        elif d.action in ("ramp", "promote"):
            self._say(
                r.t(d.decided_at),
                f"routing: {d.action} -> {_pct(d.new_weights)} (rev {d.revision_after})",
            )
        elif d.action == "alert" and r.champion_alert is None:
            r.champion_alert = d
            self._say(r.t(d.decided_at), f"controller alert: {_short(d.reason)}")
        elif d.action not in ("alert", "retrain"):
            self._say(r.t(d.decided_at), f"controller {d.action}: {_short(d.reason)}")

    def _clean_up(self) -> None:
        with contextlib.suppress(Exception):
            delete_topics(self.ep.kafka_bootstrap, self.settings.topics.all())
            delete_topics(self.ep.kafka_bootstrap, [f"{self.prefix}.metrics-changelog.v1"])
        with contextlib.suppress(Exception):
            admin = CommonSettings(**self.ep.redis_settings("admin"))
            client = make_redis(admin.redis_connection())
            for key in client.scan_iter(f"{self.prefix}:*"):
                client.delete(key)


def _pct(weights: dict[str, float]) -> str:
    return " / ".join(f"{v} {w * 100:g}%" for v, w in sorted(weights.items()))


def _weights(table: RoutingTable) -> str:
    return _pct(dict(table.weights))


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
