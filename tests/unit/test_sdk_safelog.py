"""Logging from the SDK and routing paths never raises, whatever the log sink does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from modelguard.sdk.safelog import safe_logger


@pytest.fixture
def broken_logging() -> Iterator[None]:
    saved = structlog.get_config()

    def explode(*_: Any) -> Any:
        raise ValueError("I/O operation on closed file")

    structlog.configure(processors=[explode])
    yield
    structlog.configure(**saved)


def test_safe_logger_swallows_sink_errors(broken_logging: None) -> None:
    with pytest.raises(ValueError, match="closed file"):
        structlog.get_logger("raw").warning("boom")  # the sink really is broken
    log = safe_logger("modelguard.test")
    log.warning("boom", x=1)
    log.exception("boom")
    log.info("boom")
