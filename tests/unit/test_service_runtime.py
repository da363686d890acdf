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
