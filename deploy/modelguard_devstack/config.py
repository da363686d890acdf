"""Ports, paths and the configuration files rendered for each local server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "3.9.1"


def find_repo_root(start: Path | None = None) -> Path:
    """The modelguard checkout: ``MODELGUARD_HOME`` or the nearest parent with deploy/kafka."""
    env = os.environ.get("MODELGUARD_HOME")
    if env:
        return Path(env).resolve()
    candidates = [start or Path.cwd(), Path(__file__).resolve()]
    for base in candidates:
        for parent in [base, *base.parents]:
            if (parent / "deploy" / "kafka" / "pom.xml").is_file():
                return parent
    raise FileNotFoundError(
        "cannot find the modelguard checkout (deploy/kafka/pom.xml); set MODELGUARD_HOME"
    )


@dataclass(frozen=True)
class StackConfig:
    """Where the local servers listen and keep their files.

    Ports are fixed (not random) so a stack started by ``modelguard-stack up`` is found
    again by the tests and the demo; each can be moved with ``MODELGUARD_STACK_*_PORT``.
    """

    root: Path = field(default_factory=find_repo_root)
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    redis_port: int = 16379
    prometheus_port: int = 19090
    alertmanager_port: int = 19094
    webhook_port: int = 19095
    kafka_sasl_port: int = 19096
    run_dir_override: Path | None = None

    @classmethod
    def from_env(cls, root: Path | None = None) -> StackConfig:
        kwargs: dict[str, int] = {}
        for name in (
            "kafka_port",
            "kafka_controller_port",
            "redis_port",
            "prometheus_port",
            "alertmanager_port",
            "webhook_port",
            "kafka_sasl_port",
        ):
            raw = os.environ.get(f"MODELGUARD_STACK_{name.upper()}")
            if raw is not None:
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise ValueError(
                        f"MODELGUARD_STACK_{name.upper()}={raw!r} is not a port number"
                    )
                kwargs[name] = int(raw)
        return cls(root=root or find_repo_root(), **kwargs)

    @property
    def run_dir(self) -> Path:
        return self.run_dir_override or self.root / ".run"

    @property
    def secrets_dir(self) -> Path:
        """Generated passwords, one file each (``redis-<role>``, ``kafka-<user>``), 0600."""
        return self.run_dir / "secrets"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache"

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / "kafka" / KAFKA_VERSION / "libs"

    @property
    def prometheus_targets(self) -> Path:
        """file_sd directory: drop ``<name>.json`` here to have Prometheus scrape it."""
        return self.run_dir / "prometheus" / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.root / "deploy" / "prometheus" / "rules"


#: SCRAM user of the local broker's SASL listener (password: ``secrets/kafka-<user>``).
KAFKA_SCRAM_USER = "modelguard"
KAFKA_SCRAM_MECHANISM = "SCRAM-SHA-256"


def kafka_properties(cfg: StackConfig, data_dir: Path) -> str:
    """Single-node KRaft broker tuned for a 2-core machine and fast test start-up.

    Two client listeners on loopback: PLAINTEXT (``kafka_port``) and SASL_PLAINTEXT with
    SCRAM-SHA-256 (``kafka_sasl_port``; the user is created after start, ADR 0012).
    """
    sasl = f"SASL://127.0.0.1:{cfg.kafka_sasl_port}"
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cfg.kafka_controller_port}
listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.kafka_controller_port},{sasl}
advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},{sasl}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms={KAFKA_SCRAM_MECHANISM}
listener.name.sasl.scram-sha-256.sasl.jaas.config={scram_login}
log.dirs={data_dir}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
"""


KAFKA_LOG4J = """\
log4j.rootLogger=WARN, file
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def prometheus_yaml(cfg: StackConfig) -> str:
    """Scrapes itself and every file_sd target every second; alerts go to Alertmanager."""
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {cfg.rules_dir}/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{cfg.alertmanager_port}"]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{cfg.prometheus_port}"]
  - job_name: modelguard
    file_sd_configs:
      - files: ["{cfg.prometheus_targets}/*.json"]
        refresh_interval: 1s
"""


def alertmanager_yaml(cfg: StackConfig) -> str:
    """Local routing: every alert goes to a webhook on loopback (PagerDuty in production)."""
    return f"""\
route:
  receiver: local-webhook
  group_by: [alertname, model_name]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: local-webhook
    webhook_configs:
      - url: http://127.0.0.1:{cfg.webhook_port}/alerts
        send_resolved: true
"""
