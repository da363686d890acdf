"""Prometheus exposition: a ``/metrics`` HTTP server bound to an explicit registry.

No module-level registry is used: each service (and each test) builds its own
:class:`prometheus_client.CollectorRegistry` and passes it around.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from modelguard.contracts.telemetry import Family


class MetricsServer:
    """Serves ``registry`` on ``http://host:port/metrics``; ``port=0`` picks a free port."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.host = host
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    @property
    def target(self) -> str:
        """``host:port`` as Prometheus scrape configs want it."""
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def counter(family: Family, registry: CollectorRegistry) -> Counter:
    """The catalogue's counter ``family`` registered on ``registry``."""
    _expect(family, "counter")
    return Counter(family.name, family.help, family.labels, registry=registry)


def gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    """The catalogue's gauge ``family`` registered on ``registry``."""
    _expect(family, "gauge")
    return Gauge(family.name, family.help, family.labels, registry=registry)


def histogram(family: Family, registry: CollectorRegistry) -> Histogram:
    """The catalogue's histogram ``family`` registered on ``registry``."""
    _expect(family, "histogram")
    return Histogram(
        family.name, family.help, family.labels, buckets=family.buckets or (), registry=registry
    )


def counter_snapshot(family: Family) -> CounterMetricFamily:
    """The catalogue's counter ``family``, empty, for a custom collector."""
    _expect(family, "counter")
    return CounterMetricFamily(family.name, family.help, labels=list(family.labels))


def gauge_snapshot(family: Family) -> GaugeMetricFamily:
    """The catalogue's gauge ``family``, empty, for a custom collector's ``collect()``.

    >>> from modelguard.contracts.telemetry import MODEL_ACCURACY
    >>> m = gauge_snapshot(MODEL_ACCURACY)
    >>> m.add_metric(["fraud", "v1"], 0.9)
    >>> (m.name, m.type, m.samples[0].value)
    ('model_accuracy', 'gauge', 0.9)
    """
    _expect(family, "gauge")
    return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))


def histogram_snapshot(family: Family) -> HistogramMetricFamily:
    """The catalogue's histogram ``family``, empty, for a custom collector."""
    _expect(family, "histogram")
    return HistogramMetricFamily(family.name, family.help, labels=list(family.labels))


def _expect(family: Family, kind: str) -> None:
    if family.kind != kind:
        raise TypeError(f"{family.name} is a {family.kind}, not a {kind}")
