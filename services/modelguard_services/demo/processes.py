"""Service subprocesses of the demo: ``python -m modelguard_services.<name>``, as in
production, with their JSON logs in a file and their ``/metrics`` URL read from it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelguard.errors import DependencyError


class ServiceError(DependencyError):
    """A service did not start or died; the message carries the tail of its log."""


class ServiceProcess:
    """One service subprocess; stderr (its JSON log) goes to ``log_path``."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_path: Path, cwd: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"modelguard_services.{name}", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                cwd=cwd,
                start_new_session=True,
            )

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_events(self, event: str) -> list[dict[str, object]]:
        """Log records (JSON lines) whose ``event`` is ``event``."""
        out: list[dict[str, object]] = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    out.append(record)
        return out

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise ServiceError(
                f"service {self.name} exited with code {code}; "
                f"last lines of {self.log_path}:\n{self.tail()}"
            )

    def metrics_url(self, timeout: float) -> str:
        """The ``/metrics`` URL the service logged at start-up (``metrics_listening``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            for record in self.log_events("metrics_listening"):
                return str(record["url"])
            time.sleep(0.1)
        raise ServiceError(
            f"service {self.name} did not report its /metrics URL within {timeout:.0f}s; "
            f"last lines of {self.log_path}:\n{self.tail()}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the services stop cleanly on it), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode
