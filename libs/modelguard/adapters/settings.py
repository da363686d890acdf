"""Settings shared by every service, read from ``MODELGUARD_*`` environment variables.

Invalid values fail at start with the variable name and what is wrong (pydantic).
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelguard.contracts.redis_keys import RedisKeys
from modelguard.contracts.topics import Topics


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

    def kafka_connection(self) -> dict[str, Any]:
        """librdkafka settings that reach the brokers (see ``adapters.kafka.client_config``).

        Every service builds its Kafka clients from this, so connection and security
        settings have one home.
        """
        return {"bootstrap.servers": self.kafka_bootstrap_servers}

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    @property
    def redis_keys(self) -> RedisKeys:
        return RedisKeys(prefix=self.redis_prefix)
