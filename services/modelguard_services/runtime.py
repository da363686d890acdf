"""The life cycle every service shares: JSON logs, ``/metrics``, signals, clean stop.

A service's ``__main__`` parses its own arguments and builds its settings, then hands
:func:`serve` a function that runs the service loop until the ``stop`` event is set::

    return serve("x", settings, lambda registry, stop: Service(settings, registry).run(stop))
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from pydantic_settings import SettingsError

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.partitioned import PartitionedRuntime, RuntimeOptions
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings, describe_settings_error
from modelguard.contracts import Event
from modelguard.errors import ConfigError

RunLoop = Callable[[CollectorRegistry, threading.Event], object]
E = TypeVar("E", bound=Event)
S = TypeVar("S", bound=CommonSettings)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:  # (NaN too)
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def service_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The argument parser of a service's ``__main__``, with the options every service
    takes (``--idle-exit``); the service adds its own."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--idle-exit",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without messages",
    )
    return parser


def load_settings(prog: str, factory: Callable[[], S]) -> S:
    """``factory()`` (a service's settings from ``MODELGUARD_*``), with its secret files
    read once: an invalid setting or an unreadable secret exits with code 2 and one line
    naming the variable (or the file), not a traceback."""
    try:
        settings = factory()
        settings.kafka_connection()  # reads the Kafka secret files
        settings.redis_connection()  # reads the Redis password file
    except ValidationError as exc:
        problem = describe_settings_error(exc)
    except (ConfigError, SettingsError) as exc:
        problem = str(exc)
    else:
        return settings
    sys.stderr.write(f"{prog}: invalid settings: {problem}\n")
    raise SystemExit(2)


def serve(name: str, settings: CommonSettings, run: RunLoop, **log_fields: Any) -> int:
    """Run ``run(registry, stop)`` with a metrics server; SIGTERM/SIGINT set ``stop``.

    The metrics server is closed however the loop ends; the exit code is 0 when the
    loop returns (exceptions propagate, so a crashing service exits non-zero).
    """
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)
    structlog.get_logger(f"modelguard.{name}").info(
        "metrics_listening", service=name, url=server.url, **log_fields
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run(registry, stop)
    finally:
        server.close()
    return 0


def partitioned_runtime(
    settings: CommonSettings,
    registry: CollectorRegistry,
    service: str,
    group_id: str,
    models: Mapping[str, type[E]],
    *,
    checkpoint_interval: float,
    clock: Callable[[], datetime],
    batch: int = 1000,
) -> PartitionedRuntime[E]:
    """The partitioned runtime of a Redis-checkpointing service (drift, experiments): its
    settings' Kafka connection, the deployment's dead-letter topic, batches of ``batch``."""
    return PartitionedRuntime(
        settings.kafka_connection(),
        registry,
        RuntimeOptions(
            service=service,
            group_id=group_id,
            models=models,
            dead_letter_topic=settings.topics.dead_letter,
            checkpoint_interval=checkpoint_interval,
            batch=batch,
        ),
        clock=clock,
    )
