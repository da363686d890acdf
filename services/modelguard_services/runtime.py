"""The life cycle every service shares: JSON logs, ``/metrics``, signals, clean stop.

A service's ``__main__`` parses its own arguments and builds its settings, then hands
:func:`serve` a function that runs the service loop until the ``stop`` event is set::

    return serve("x", settings, lambda registry, stop: Service(settings, registry).run(stop))
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from modelguard.adapters.logging import configure_logging
from modelguard.adapters.prometheus import MetricsServer
from modelguard.adapters.settings import CommonSettings

RunLoop = Callable[[CollectorRegistry, threading.Event], object]


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
