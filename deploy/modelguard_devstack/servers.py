"""One class per local server: how to install it, start it, and tell that it is ready."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from modelguard.adapters.redis_acl import ROLES, acl_file
from modelguard.errors import DependencyError
from modelguard_devstack.config import (
    KAFKA_LOG4J,
    KAFKA_SCRAM_MECHANISM,
    KAFKA_SCRAM_USER,
    KAFKA_VERSION,
    StackConfig,
    alertmanager_yaml,
    kafka_properties,
    prometheus_yaml,
)


class StackError(DependencyError):
    """A server could not be installed or started; the message says which and why."""


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_secret(path: Path) -> str:
    """The password in ``path``, generated (random, mode 0600) when the file is missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def redis_secret_path(cfg: StackConfig, role: str) -> Path:
    return cfg.secrets_dir / f"redis-{role}"


def kafka_secret_path(cfg: StackConfig, user: str = KAFKA_SCRAM_USER) -> Path:
    return cfg.secrets_dir / f"kafka-{user}"


def _tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Server(ABC):
    """Base: a process with a pid file and a log file under ``.run/<name>/``."""

    cfg: StackConfig
    name: str = "server"
    apt_packages: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        return self.cfg.run_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.dir / "pid"

    # -- to override -------------------------------------------------------------
    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its readiness check."""

    def prepare(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Write configuration files before start."""

    def after_ready(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Idempotent set-up once the server answers (e.g. create users)."""

    def install(self) -> None:
        """Idempotent: installs the Debian packages only when a binary is missing."""
        missing = [b for b in self.binaries if shutil.which(b) is None]
        if missing:
            apt_install(self.apt_packages, reason=f"{self.name} needs {', '.join(missing)}")

    # -- lifecycle ---------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def start(self, timeout: float) -> float:
        """Start (unless already ready) and wait for readiness; returns seconds taken."""
        t0 = time.monotonic()
        if self.ready():
            self.after_ready()
            return 0.0
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
                env=self.env(),
            )
        self.pid_path.write_text(str(proc.pid))
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"{self.name} exited with code {proc.returncode} during start-up; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self.ready():
                self.after_ready()
                return time.monotonic() - t0
            time.sleep(0.2)
        self.stop()
        raise StackError(
            f"{self.name} was not ready within {timeout:.0f}s; "
            f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout``; True if one ran."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid_path.unlink(missing_ok=True)
        return True

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie that is not our child still answers kill(0); check /proc.
        stat = Path(f"/proc/{pid}/stat")
        with contextlib.suppress(OSError):
            if stat.read_text().split(")")[-1].split()[0] == "Z":
                return False
        return True


def apt_install(packages: tuple[str, ...], *, reason: str) -> None:
    """Install Debian packages (root only); the error says what to run otherwise."""
    if not packages:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{reason}: run `sudo apt-get install {' '.join(packages)}` first")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{reason}: `{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")


@dataclass
class KafkaServer(Server):
    """Apache Kafka in KRaft mode from its Maven Central jars, run with the system java."""

    name: str = "kafka"
    apt_packages: tuple[str, ...] = ("openjdk-17-jre-headless", "maven")
    binaries: tuple[str, ...] = ("java", "mvn")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.cfg.kafka_port}"

    def install(self) -> None:
        super().install()
        marker = self.cfg.kafka_libs / f"kafka_2.13-{KAFKA_VERSION}.jar"
        if marker.is_file():
            return
        pom = self.cfg.root / "deploy" / "kafka" / "pom.xml"
        self.cfg.kafka_libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.cfg.kafka_libs}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not marker.is_file():
            raise StackError(
                "could not fetch the Kafka jars with Maven:\n"
                + (result.stdout + result.stderr)[-3000:]
            )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.dir}",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            "-cp",
            f"{self.cfg.kafka_libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        data = self.dir / "data"
        props = self.dir / "server.properties"
        props.write_text(kafka_properties(self.cfg, data))
        (self.dir / "log4j.properties").write_text(KAFKA_LOG4J)
        if (data / "meta.properties").is_file():
            return
        uuid = (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        fmt = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                uuid,
                "-c",
                str(props),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.dir / "server.properties"))

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (SCRAM-SHA-256) listener."""
        return f"127.0.0.1:{self.cfg.kafka_sasl_port}"

    def after_ready(self) -> None:
        """Create (or reset) the SCRAM user of the SASL listener from its secret file."""
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        password = ensure_secret(kafka_secret_path(self.cfg))
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            KAFKA_SCRAM_USER,
            ScramCredentialInfo(ScramMechanism[KAFKA_SCRAM_MECHANISM.replace("-", "_")], 8192),
            password.encode(),
        )
        deadline = time.monotonic() + 30.0
        while True:
            try:
                for fut in admin.alter_user_scram_credentials([upsert]).values():
                    fut.result(timeout=10.0)
                return
            except Exception as exc:  # the controller may still be electing itself
                if time.monotonic() > deadline:
                    raise StackError(f"could not create the Kafka SCRAM user: {exc}") from exc
                time.sleep(0.5)

    def ready(self) -> bool:
        from confluent_kafka.admin import AdminClient  # local: keeps `status` import light

        try:
            md = AdminClient(
                {
                    "bootstrap.servers": self.bootstrap,
                    "socket.connection.setup.timeout.ms": 1000,
                    "log_level": 0,
                }
            ).list_topics(timeout=1.0)
        except Exception:
            return False
        return bool(md.brokers)


@dataclass
class RedisServer(Server):
    """Debian's redis-server without persistence, on loopback."""

    name: str = "redis"
    apt_packages: tuple[str, ...] = ("redis-server",)
    binaries: tuple[str, ...] = ("redis-server",)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.cfg.redis_port}/0"

    @property
    def acl_path(self) -> Path:
        return self.dir / "users.acl"

    def password(self, role: str) -> str:
        """The password of ACL user ``role`` (generated on first use)."""
        return ensure_secret(redis_secret_path(self.cfg, role))

    def start(self, timeout: float) -> float:
        if not self.ready() and self._answers_anonymously():
            raise StackError(
                f"a Redis without modelguard's ACL users answers on port {self.cfg.redis_port}"
                " (started by an older launcher?): stop it with `modelguard-stack down --only"
                " redis` (or `./dev down`), then start again"
            )
        return super().start(timeout)

    def _answers_anonymously(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def prepare(self) -> None:
        """Render the ACL file: anonymous user off, one user per role (ADR 0012)."""
        passwords = {role: self.password(role) for role in ROLES}
        self.acl_path.write_text(acl_file(passwords))
        self.acl_path.chmod(0o600)

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--aclfile",
            str(self.acl_path),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.cfg.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--protected-mode",
            "yes",
        ]

    def ready(self) -> bool:
        import redis

        path = redis_secret_path(self.cfg, "admin")
        if not path.is_file():
            return False
        try:
            client = redis.Redis.from_url(
                self.url,
                username="admin",
                password=path.read_text().strip(),
                socket_connect_timeout=0.5,
            )
            return bool(client.ping())
        except redis.RedisError:
            return False


@dataclass
class PrometheusServer(Server):
    """Debian's prometheus, scraping file_sd targets every second."""

    name: str = "prometheus"
    apt_packages: tuple[str, ...] = ("prometheus",)
    binaries: tuple[str, ...] = ("prometheus", "promtool")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.prometheus_port}"

    def prepare(self) -> None:
        self.cfg.prometheus_targets.mkdir(parents=True, exist_ok=True)
        self.cfg.rules_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "prometheus.yml").write_text(prometheus_yaml(self.cfg))

    def command(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.cfg.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
        ]

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")


@dataclass
class AlertmanagerServer(Server):
    """Debian's prometheus-alertmanager, single instance (clustering off)."""

    name: str = "alertmanager"
    apt_packages: tuple[str, ...] = ("prometheus-alertmanager",)
    binaries: tuple[str, ...] = ("prometheus-alertmanager", "amtool")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.alertmanager_port}"

    def prepare(self) -> None:
        (self.dir / "alertmanager.yml").write_text(alertmanager_yaml(self.cfg))

    def command(self) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={self.dir / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.cfg.alertmanager_port}",
            "--cluster.listen-address=",
        ]

    def ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")
