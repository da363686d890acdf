"""Human-readable timeline on stdout (machine-readable logs go to stderr as JSON)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Narrator:
    """Writes ``[+12.3s] message`` lines, measured from construction."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def say(self, message: str) -> None:
        self._out.write(f"[+{self.elapsed():6.2f}s] {message}\n")
        self._out.flush()
