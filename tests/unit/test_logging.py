"""Logging never raises into callers, and follows stderr replacement."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from modelguard.adapters.logging import configure_logging


def test_logs_follow_current_stderr_and_survive_a_closed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("INFO")
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    structlog.get_logger("t").info("hello", model="fraud")
    record = json.loads(first.getvalue())
    assert record["event"] == "hello" and record["model"] == "fraud" and record["level"] == "info"
    first.close()
    structlog.get_logger("t").info("after close")  # must not raise
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("t").warning("again")
    assert json.loads(second.getvalue())["event"] == "again"


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")
