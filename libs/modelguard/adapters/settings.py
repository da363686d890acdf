"""Settings shared by every service, read from ``MODELGUARD_*`` environment variables.

Invalid values fail at start with the variable name and what is wrong (pydantic).
Secrets (the Redis password, the Kafka SASL password, TLS keys) are read from files
only (``*_password_file``); a URL carrying a password is refused (ADR 0012).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelguard.adapters.redis_client import RedisConnection
from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics
from modelguard.errors import ConfigError

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class SecretFileError(ConfigError):
    """A secret file named in the settings cannot be read (the message names it)."""


def read_secret(path: Path, what: str) -> str:
    """The first line of a secret file, stripped; the error names the file and setting."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretFileError(f"{what}: cannot read {path} ({exc.strerror})") from None
    secret = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise SecretFileError(f"{what}: {path} is empty")
    return secret


def describe_settings_error(exc: ValidationError, env_prefix: str = "MODELGUARD_") -> str:
    """One line per invalid setting, named by its environment variable.

    >>> try:
    ...     CommonSettings(metrics_port="x")
    ... except ValidationError as exc:
    ...     describe_settings_error(exc)
    'MODELGUARD_METRICS_PORT: Input should be a valid integer, unable to parse string as an integer'
    """
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:  # a rule across settings: its message names them
            lines.append(msg)
            continue
        name = loc if loc.isupper() else f"{env_prefix}{loc.upper()}"
        lines.append(f"{name}: {msg}")
    return "; ".join(lines)


class CommonSettings(BaseSettings):
    """Connection and naming settings; ``MODELGUARD_KAFKA_BOOTSTRAP_SERVERS`` etc.

    ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (unprefixed) are honoured too, so the
    same environment serves the tests and the services.
    """

    model_config = SettingsConfigDict(env_prefix="MODELGUARD_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices(
            "kafka_bootstrap_servers",
            "MODELGUARD_KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("redis_url", "MODELGUARD_REDIS_URL", "REDIS_URL"),
    )
    topic_prefix: str = Field(default="modelguard", pattern=r"^[A-Za-z0-9._-]+$")
    redis_prefix: str = Field(default="modelguard", pattern=r"^[A-Za-z0-9._-]+$")
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"

    # -- Redis authentication (ACL user; password from a file) -------------------------
    redis_username: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    redis_password_file: Path | None = None

    # -- Kafka security (SASL/SCRAM and/or TLS; secrets from files) ---------------------
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = "SCRAM-SHA-256"
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_certificate_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password_file: Path | None = None
    kafka_ssl_endpoint_identification: bool = True

    @field_validator("redis_url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        if urlsplit(url).password is not None:
            raise ValueError(
                "the Redis URL carries a password; put it in a file and set "
                "MODELGUARD_REDIS_PASSWORD_FILE (and MODELGUARD_REDIS_USERNAME) instead"
            )
        return url

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> CommonSettings:
        if self.kafka_security_protocol.startswith("SASL_") and (
            self.kafka_sasl_username is None or self.kafka_sasl_password_file is None
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs "
                "MODELGUARD_KAFKA_SASL_USERNAME and MODELGUARD_KAFKA_SASL_PASSWORD_FILE"
            )
        if (self.kafka_ssl_certificate_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "MODELGUARD_KAFKA_SSL_CERTIFICATE_FILE and MODELGUARD_KAFKA_SSL_KEY_FILE "
                "go together (client certificate and its key)"
            )
        return self

    def kafka_connection(self) -> dict[str, Any]:
        """librdkafka settings that reach the brokers (see ``adapters.kafka.client_config``).

        Every service builds its Kafka clients from this, so connection and security
        settings have one home. Secret files are read here (a missing or empty file
        raises :class:`SecretFileError` naming it).
        """
        conf: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return conf
        conf["security.protocol"] = protocol.lower()
        if protocol.startswith("SASL_"):
            if self.kafka_sasl_password_file is None:  # the validator checks it already
                raise SecretFileError("MODELGUARD_KAFKA_SASL_PASSWORD_FILE is not set")
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username
            conf["sasl.password"] = read_secret(
                self.kafka_sasl_password_file, "MODELGUARD_KAFKA_SASL_PASSWORD_FILE"
            )
        if protocol.endswith("SSL"):
            if self.kafka_ssl_ca_file is not None:
                conf["ssl.ca.location"] = str(self.kafka_ssl_ca_file)
            if self.kafka_ssl_certificate_file is not None:
                conf["ssl.certificate.location"] = str(self.kafka_ssl_certificate_file)
                conf["ssl.key.location"] = str(self.kafka_ssl_key_file)
            if self.kafka_ssl_key_password_file is not None:
                conf["ssl.key.password"] = read_secret(
                    self.kafka_ssl_key_password_file, "MODELGUARD_KAFKA_SSL_KEY_PASSWORD_FILE"
                )
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.kafka_ssl_endpoint_identification else "none"
            )
        return conf

    def redis_connection(self, url: str | None = None) -> RedisConnection:
        """Where and as whom to reach Redis (``url`` overrides the setting's URL).

        The password is read from ``redis_password_file``; without a username the
        connection is anonymous (only for a server without ACL users, e.g. a bare test
        server).
        """
        password = (
            read_secret(self.redis_password_file, "MODELGUARD_REDIS_PASSWORD_FILE")
            if self.redis_password_file is not None
            else None
        )
        return RedisConnection(url or self.redis_url, self.redis_username, password)

    def consumer_group(self, service: str) -> str:
        """The Kafka consumer group of ``service``: ``<topic_prefix>-<service>``, so two
        deployments sharing a broker (different topic prefixes) never share a group.

        >>> CommonSettings(topic_prefix="prod").consumer_group("drift")
        'prod-drift'
        """
        return f"{self.topic_prefix}-{service}"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    @property
    def redis_keys(self) -> RedisKeys:
        return RedisKeys(prefix=self.redis_prefix)
