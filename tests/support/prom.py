"""Talk to a real Prometheus: register scrape targets (file_sd) and query its HTTP API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests


class PrometheusHelper:
    def __init__(self, url: str, targets_dir: Path) -> None:
        self.url = url.rstrip("/")
        self.targets_dir = targets_dir
        self._files: list[Path] = []

    def register(self, target: str, **labels: str) -> str:
        """Have Prometheus scrape ``host:port``; returns the unique ``job_id`` label."""
        job_id = f"t-{uuid.uuid4().hex[:10]}"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{job_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [target], "labels": {"job_id": job_id, **labels}}]))
        tmp.rename(path)
        self._files.append(path)
        return job_id

    def query(self, promql: str) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        resp.raise_for_status()
        body = resp.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``predicate(result)``; raises with the last result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if predicate(result):
                return result
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {promql!r}; last result: {result}")

    def close(self) -> None:
        for path in self._files:
            path.unlink(missing_ok=True)


def value(result: list[dict[str, Any]]) -> float:
    """The single sample value of an instant-vector result (sum it in PromQL first)."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])
