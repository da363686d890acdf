"""Threads whose failure the test sees: ``join`` re-raises what the thread raised, and
fails if the thread is still running (instead of a test asserting on empty data later)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class CheckedThread(threading.Thread):
    """A daemon thread running ``target(*args)``; :meth:`join` raises its exception."""

    def __init__(self, target: Callable[..., object], *args: Any, name: str | None = None) -> None:
        super().__init__(name=name or getattr(target, "__name__", None), daemon=True)
        self._call = (target, args)
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args = self._call
        try:
            target(*args)
        except BaseException as exc:  # handed to join(), where the test sees it
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise AssertionError(f"thread {self.name} failed: {self.error!r}") from self.error
        if self.is_alive():
            raise AssertionError(f"thread {self.name} still running after {timeout} s")


def start_thread(
    target: Callable[..., object], *args: Any, name: str | None = None
) -> CheckedThread:
    """Start ``target(*args)`` in a :class:`CheckedThread`."""
    thread = CheckedThread(target, *args, name=name)
    thread.start()
    return thread
