"""Security settings and the Redis ACL model (ADR 0012), without servers.

The Redis users' key patterns are checked against the real key layouts (every key a
service writes is writable by its role and by no role that does not need it), the
rules file used by compose/Helm against the code, and the compose/Helm entrypoint
script against the launcher's ACL file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelguard.adapters import redis_acl
from modelguard.adapters.drift_store import DriftCheckpoints, ReferenceStore
from modelguard.adapters.settings import CommonSettings, SecretFileError
from modelguard.contracts.decisions import ControlKeys
from modelguard.contracts.experiments import ExperimentKeys
from modelguard.contracts.redis_keys import RedisKeys
from modelguard_services.metrics.settings import MetricsSettings
from tests.support.paths import ROOT

P = "prod"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MODELGUARD_"):
            monkeypatch.delenv(key)


# -- Kafka -------------------------------------------------------------------------------


def test_kafka_plaintext_by_default() -> None:
    assert CommonSettings().kafka_connection() == {"bootstrap.servers": "127.0.0.1:19092"}


def test_kafka_sasl_scram_reads_the_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret\n")
    conn = CommonSettings(
        kafka_bootstrap_servers="b:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="mg",
        kafka_sasl_password_file=secret,
        kafka_ssl_ca_file=tmp_path / "ca.crt",
    ).kafka_connection()
    assert conn == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "mg",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(tmp_path / "ca.crt"),
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_kafka_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "p"
    secret.write_text("pw")
    monkeypatch.setenv("MODELGUARD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("MODELGUARD_KAFKA_SASL_USERNAME", "mg")
    monkeypatch.setenv("MODELGUARD_KAFKA_SASL_PASSWORD_FILE", str(secret))
    conn = CommonSettings().kafka_connection()
    assert conn["sasl.password"] == "pw" and conn["sasl.mechanism"] == "SCRAM-SHA-256"


def test_kafka_sasl_without_credentials_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELGUARD_KAFKA_SASL_PASSWORD", "plain-text-is-not-read")
    with pytest.raises(ValidationError, match="MODELGUARD_KAFKA_SASL_PASSWORD_FILE"):
        CommonSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="mg")


def test_missing_or_empty_secret_file_names_the_file(tmp_path: Path) -> None:
    s = CommonSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="mg",
        kafka_sasl_password_file=tmp_path / "nope",
    )
    with pytest.raises(SecretFileError, match=r"nope"):
        s.kafka_connection()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretFileError, match="is empty"):
        CommonSettings(redis_password_file=empty).redis_connection()


def test_sdk_from_settings_carries_the_security_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelguard.sdk import emitter

    seen: list[dict[str, Any]] = []

    class FakeProducer:
        def __init__(self, conf: dict[str, Any]) -> None:
            seen.append(conf)

        def poll(self, _timeout: float = 0) -> int:
            return 0

        def produce(self, *_args: object, **_kwargs: object) -> None:
            return None

        def flush(self, _timeout: float = 0) -> int:
            return 0

        def purge(self, *_args: object) -> None:
            return None

        def close(self) -> None:
            return None

        def __len__(self) -> int:
            return 0

    monkeypatch.setattr(emitter, "Producer", FakeProducer)
    secret = tmp_path / "p"
    secret.write_text("pw")
    settings = CommonSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="mg",
        kafka_sasl_password_file=secret,
    )
    emitter.EventSDK.from_settings(settings).close()
    (conf,) = seen
    assert conf["security.protocol"] == "sasl_plaintext" and conf["sasl.password"] == "pw"
    assert conf["enable.idempotence"] is True


# -- Redis connection ----------------------------------------------------------------------


def test_redis_user_and_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis-controller"
    secret.write_text("pw\n")
    conn = CommonSettings(redis_username="controller", redis_password_file=secret)
    c = conn.redis_connection()
    assert (c.username, c.password) == ("controller", "pw")
    assert "pw" not in repr(c)
    assert conn.redis_connection(url="redis://other:1/0").url == "redis://other:1/0"


def test_a_password_in_the_redis_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="MODELGUARD_REDIS_PASSWORD_FILE"):
        CommonSettings(redis_url="redis://admin:hunter2@redis:6379/0")


def test_consumer_groups_derive_from_the_topic_prefix() -> None:
    assert CommonSettings(topic_prefix="a").consumer_group("drift") == "a-drift"
    assert MetricsSettings(topic_prefix="a").metrics_group_id == "a-metrics"
    assert MetricsSettings(topic_prefix="b").metrics_group_id == "b-metrics"
    assert MetricsSettings(topic_prefix="a", metrics_group_id="g").metrics_group_id == "g"


# -- Redis ACL ---------------------------------------------------------------------------


def writable(role: str, key: str, prefix: str = P) -> bool:
    rules = redis_acl.rules(role, prefix).split()
    if "~*" in rules:
        return True
    return any(fnmatch.fnmatchcase(key, r[4:]) for r in rules if r.startswith("%RW~"))


def readable(role: str, key: str, prefix: str = P) -> bool:
    rules = redis_acl.rules(role, prefix).split()
    if "~*" in rules:
        return True
    return any(
        fnmatch.fnmatchcase(key, r.split("~", 1)[1]) for r in rules if r.startswith(("%R~", "%RW~"))
    )


def service_keys() -> dict[str, list[str]]:
    """Keys each role writes, from the code's own key layouts."""
    keys, control, exp = RedisKeys(P), ControlKeys(P), ExperimentKeys(P)
    routing = [
        keys.routing("fraud"),
        keys.routing_audit,
        keys.routing_models,
        keys.routing_versions("fraud"),
    ]

    class NoRedis:
        def register_script(self, _script: str) -> None:
            return None

    refs = ReferenceStore(NoRedis(), P)  # type: ignore[arg-type]
    drift = [
        DriftCheckpoints(NoRedis(), P).key("g", "p0"),  # type: ignore[arg-type]
        refs._pointer("fraud", "v1"),
        refs._history("fraud", "v1"),
    ]
    experiments = [
        exp.spec("e1"),
        exp.partials("e1"),
        exp.sequential("e1"),
        exp.bandit("e1"),
        exp.split_history("e1"),
        exp.units("g", 0),
        exp.checkpoint("g", 0),
    ]
    return {
        "controller": [*routing, control.lease, control.state, control.frozen, control.audit],
        "experiments": [*routing, *experiments],
        "drift": drift,
        "operator": [
            *routing,
            control.frozen,
            control.audit,
            exp.spec("e1"),
            exp.index,
            exp.audit,
            refs._pointer("fraud", None),
        ],
    }


@pytest.mark.parametrize("role", ["controller", "experiments", "drift", "operator"])
def test_every_key_a_service_writes_is_writable_by_its_role(role: str) -> None:
    for key in service_keys()[role]:
        assert writable(role, key), f"{role} cannot write {key}"


def test_least_privilege_between_roles() -> None:
    keys = service_keys()
    routing_key = RedisKeys(P).routing("fraud")
    for key in keys["controller"] + keys["experiments"] + keys["drift"]:
        assert not writable("router", key), key
    assert readable("router", routing_key)
    assert not readable("router", ControlKeys(P).state)
    assert not writable("drift", routing_key)
    assert not writable("drift", ControlKeys(P).lease)
    assert not writable("experiments", ControlKeys(P).state)
    assert not writable("controller", keys["drift"][0])
    # another deployment's prefix is out of reach of a role rendered for "prod"
    assert not writable("controller", RedisKeys("staging").routing("fraud"))
    assert "-@dangerous" in redis_acl.rules("operator", P)


def test_acl_file_disables_the_default_user_and_hashes_passwords() -> None:
    text = redis_acl.acl_file({"router": "pw", "admin": "root"})
    lines = text.splitlines()
    assert lines[0].startswith("user default off ")
    assert " nopass" not in text and "pw" not in text.replace(hashlib.sha256(b"pw").hexdigest(), "")
    assert f"user router on #{hashlib.sha256(b'pw').hexdigest()} " in text
    with pytest.raises(ValueError, match="unknown Redis role"):
        redis_acl.rules("intruder")


def test_compose_and_helm_rules_file_is_generated_from_the_code() -> None:
    path = ROOT / "deploy" / "redis-acl" / "acl-rules.conf"
    assert path.read_text() == redis_acl.rules_file("modelguard"), (
        "regenerate: python -c 'from modelguard.adapters.redis_acl import rules_file; "
        'print(rules_file(), end="")\' > deploy/redis-acl/acl-rules.conf'
    )


def test_render_script_writes_the_same_acl_file_as_the_launcher(tmp_path: Path) -> None:
    passwords = {role: f"pw-{role}" for role in redis_acl.ROLES}
    for role, pw in passwords.items():
        (tmp_path / f"redis-{role}").write_text(pw + "\n")
    acl = tmp_path / "users.acl"

    def render(*command: str) -> subprocess.CompletedProcess[str]:
        """deploy/redis-acl/render-acl.sh with the secrets in tmp_path, then ``command``."""
        return subprocess.run(
            ["sh", str(ROOT / "deploy" / "redis-acl" / "render-acl.sh"), *command],
            env={
                "PATH": "/usr/bin:/bin",
                "REDIS_ACL_RULES": str(ROOT / "deploy" / "redis-acl" / "acl-rules.conf"),
                "REDIS_SECRETS_DIR": str(tmp_path),
                "REDIS_ACL_FILE": str(acl),
            },
            capture_output=True,
            text=True,
            check=False,
        )

    result = render("sh", "-c", 'test "$1" = --aclfile && cat "$2"', "sh")
    assert result.returncode == 0, result.stderr
    assert result.stdout == redis_acl.acl_file(passwords, prefix="modelguard")
    (tmp_path / "redis-drift").unlink()
    failed = render("true")
    assert failed.returncode != 0 and "redis-drift" in failed.stderr
