"""A structlog logger whose calls never raise.

Code on a model server's request path and in background threads (delivery callbacks,
the routing listener) logs through this, so a broken log sink (a closed stderr, a
misconfigured processor) can never break serving or stop those threads.

>>> log = safe_logger("modelguard.example")
>>> log.info("hello", answer=42)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import structlog


class SafeLogger:
    """Proxies ``info``/``warning``/``error``/``exception``/``debug``, swallowing errors."""

    def __init__(self, name: str) -> None:
        self._logger = structlog.get_logger(name)

    def __getattr__(self, method: str) -> Callable[..., None]:
        target = getattr(self._logger, method)

        def call(event: str, *args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(Exception):
                target(event, *args, **kwargs)

        return call


def safe_logger(name: str) -> SafeLogger:
    return SafeLogger(name)
