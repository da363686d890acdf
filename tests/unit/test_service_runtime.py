"""The shared service life cycle: /metrics while running, closed after, errors propagate."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from modelguard.adapters.settings import CommonSettings
from modelguard_services.runtime import serve
from tests.support.ports import free_port


def test_serve_exposes_metrics_while_the_loop_runs_and_closes_after() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    seen: list[str] = []

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        Counter("demo_things_total", "things", registry=registry).inc(3)
        seen.append(urllib.request.urlopen(url, timeout=5).read().decode())
        assert not stop.is_set()

    assert serve("t", CommonSettings(metrics_port=port), run) == 0
    assert "demo_things_total 3.0" in seen[0]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=1)


def test_a_crashing_loop_propagates_and_still_closes_the_server() -> None:
    port = free_port()

    def run(registry: CollectorRegistry, stop: threading.Event) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        serve("t", CommonSettings(metrics_port=port), run)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)


SERVICE_ARGV: dict[str, list[str]] = {
    "controller": ["--policies", "deploy/policies"],
    "drift": [],
    "experiments": [],
    "metrics": [],
    "validator": [],
    "simulator": ["--scenario", "deploy/scenarios/demo-canary.yaml"],
}


@pytest.mark.parametrize("service", sorted(SERVICE_ARGV))
@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"MODELGUARD_METRICS_PORT": "not-a-port"},
            "invalid settings: MODELGUARD_METRICS_PORT: Input should be a valid integer",
        ),
        (
            {"MODELGUARD_REDIS_USERNAME": "x", "MODELGUARD_REDIS_PASSWORD_FILE": "/no/such/file"},
            "invalid settings: MODELGUARD_REDIS_PASSWORD_FILE: cannot read /no/such/file",
        ),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable_not_a_traceback(
    service: str,
    env: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: a pydantic ValidationError or SecretFileError traceback (exit 1)."""
    import importlib

    # closed ports: a service that got past its settings must not reach a real server
    monkeypatch.setenv("MODELGUARD_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MODELGUARD_REDIS_URL", "redis://127.0.0.1:1/0")
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    main = importlib.import_module(f"modelguard_services.{service}.__main__").main
    with pytest.raises(SystemExit) as exited:
        main(SERVICE_ARGV[service])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_settings_errors_name_every_variable() -> None:
    from pydantic import ValidationError

    from modelguard.adapters.settings import describe_settings_error

    with pytest.raises(ValidationError) as caught:
        CommonSettings(metrics_port="x", topic_prefix="bad prefix")  # type: ignore[arg-type]
    text = describe_settings_error(caught.value)
    assert sorted(text.split("; ")) == [
        "MODELGUARD_METRICS_PORT: Input should be a valid integer, unable to parse string as "
        "an integer",
        "MODELGUARD_TOPIC_PREFIX: String should match pattern '^[A-Za-z0-9._-]+$'",
    ]


@pytest.mark.parametrize("value", ["-1", "0", "nan", "soon"])
def test_idle_exit_must_be_positive_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``--idle-exit -1`` was accepted (the service exited as soon as it owned
    partitions)."""
    from modelguard_services.runtime import service_parser

    with pytest.raises(SystemExit) as exited:
        service_parser("modelguard-metrics", None).parse_args(["--idle-exit", value])
    assert exited.value.code == 2
    assert "argument --idle-exit:" in capsys.readouterr().err


def test_idle_exit_takes_seconds() -> None:
    from modelguard_services.runtime import service_parser

    assert service_parser("p", None).parse_args(["--idle-exit", "2.5"]).idle_exit == 2.5
    assert service_parser("p", None).parse_args([]).idle_exit is None
