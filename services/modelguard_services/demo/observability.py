"""The loop's view of Prometheus and Alertmanager: rule loading, active alerts, and the
local webhook that stands in for PagerDuty/Slack."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelguard.errors import DependencyError


def _get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def ensure_rules_loaded(prometheus_url: str, alert: str, timeout: float = 15.0) -> None:
    """Reload Prometheus when it started before ``alert``'s rule file was added."""

    def loaded() -> bool:
        groups = _get_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"]
        return any(r.get("name") == alert for g in groups for r in g["rules"])

    if loaded():
        return
    req = urllib.request.Request(f"{prometheus_url}/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if loaded():
            return
        time.sleep(0.3)
    raise DependencyError(f"Prometheus at {prometheus_url} does not load the rule {alert!r}")


def active_alerts(alertmanager_url: str, **labels: str) -> list[dict[str, Any]]:
    """Active alerts in Alertmanager matching ``labels`` exactly."""
    query = urllib.parse.urlencode(
        [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        + [("filter", f'{k}="{v}"') for k, v in labels.items()]
    )
    alerts: list[dict[str, Any]] = _get_json(f"{alertmanager_url}/api/v2/alerts?{query}")
    return alerts


class WebhookReceiver:
    """The local stand-in for PagerDuty/Slack: Alertmanager's webhook on loopback."""

    def __init__(self, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                with contextlib.suppress(ValueError):
                    body = json.loads(self.rfile.read(min(length, 1 << 20)))
                    if isinstance(body, dict):
                        receiver.received.extend(body.get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def ours(self, job_id: str) -> list[dict[str, Any]]:
        """Notified alerts of this run's series (Alertmanager sends every alert here)."""
        return [
            a
            for a in list(self.received)
            if isinstance(a.get("labels"), dict) and a["labels"].get("job_id") == job_id
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def notified_names(
    webhook: WebhookReceiver,
    job_id: str,
    alertname: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> list[str]:
    """The alert names the webhook was notified of for ``job_id``, once ``alertname`` is
    among them or ``timeout`` seconds have passed (Alertmanager sends a new alert of a
    group after ``group_wait``, later ones after ``group_interval``)."""
    end = clock() + timeout
    while True:
        names = sorted({a["labels"].get("alertname", "?") for a in webhook.ours(job_id)})
        if alertname in names or clock() >= end:
            return names
        sleep(0.2)
