"""Polling instead of sleeping: wait for a condition, fail with what was awaited."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_for(
    cond: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    progress: Callable[[], object] | None = None,
) -> None:
    """Poll ``cond`` every 50 ms; fail with ``what`` (and ``progress()``, what was
    reached) after ``timeout`` seconds, or at once with its stderr tail when ``proc``
    (the service awaited) exits."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            raise AssertionError(f"{what}: the service exited: {err}")
        if time.monotonic() >= deadline:
            reached = f" ({progress()})" if progress is not None else ""
            raise AssertionError(f"timed out: {what}{reached}")
        time.sleep(0.05)
